"""Keras .h5 import: TensorFlow's own outputs reproduced, Keras semantics, and refusals."""

from __future__ import annotations

import functools
import json
import marshal
import pickle
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ais_torch.archs import preset_for_title
from ais_torch.archs.base import AisArch
from ais_torch.errors import ModelFormatError
from ais_torch.formats.keras.graph import KerasGraphModule, tf_same_pad
from ais_torch.formats.keras.read import KerasModel, load_keras_model, read_keras_h5
from ais_torch.formats.scnm import load_scnm, read_members, read_metadata

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
REFERENCE_MODELS = sorted(
    [*SHARED.glob("reference/models/*/*.scnm"), *SHARED.glob("reference/models_random/*.scnm")]
)
MODEL_IDS = [f"{p.parent.name}__{p.stem}" for p in REFERENCE_MODELS] or ["no-reference-kit"]
TOLERANCE = 1e-4
DEEPFINDER = "realdata/deepfinder_keras_h5"


# -- the reference kit: every original .scnm against TensorFlow ------------------------------------
@functools.cache
def _reference(key: str) -> tuple[Path, dict[str, np.ndarray]]:
    path = REFERENCE_MODELS[MODEL_IDS.index(key)]
    npz = SHARED / "reference" / "keras_refs" / f"{key}.npz"
    with np.load(npz) as data:
        return path, {k: data[k] for k in data.files}


@functools.cache
def _mapped(key: str) -> torch.nn.Module:
    model, _ = load_scnm(_reference(key)[0])
    return model


@functools.cache
def _generic(key: str) -> KerasGraphModule:
    path = _reference(key)[0]
    (payload,) = [b for n, b in read_members(path).items() if n.endswith("_weights.h5")]
    return read_keras_h5(payload, name=str(path))


def _max_diff(model: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        out = model(torch.from_numpy(x)).numpy()
    assert out.shape == y.shape
    return float(np.abs(out - y).max())


def test_every_reference_model_has_tensorflow_outputs(shared_dir: Path) -> None:
    refs = {p.stem for p in (shared_dir / "reference" / "keras_refs").glob("*.npz")}
    assert REFERENCE_MODELS and set(MODEL_IDS) <= refs


@pytest.mark.parametrize("key", MODEL_IDS)
def test_original_model_maps_onto_our_architecture_and_matches_tensorflow(
    shared_dir: Path, key: str
) -> None:
    path, ref = _reference(key)
    model = _mapped(key)
    meta = read_metadata(path)
    assert isinstance(model, AisArch), f"{key} was not mapped onto an ais_torch architecture"
    assert model.preset == preset_for_title(meta.arch, meta.n_parameters)
    assert not model.training
    assert _max_diff(model, ref["x_slice"], ref["y_slice"]) <= TOLERANCE
    assert _max_diff(model, ref["x_rand"][:1], ref["y_rand"][:1]) <= TOLERANCE


@pytest.mark.parametrize("key", MODEL_IDS)
def test_generic_graph_matches_tensorflow(shared_dir: Path, key: str) -> None:
    _, ref = _reference(key)
    assert _max_diff(_generic(key), ref["x_slice"], ref["y_slice"]) <= TOLERANCE
    assert _max_diff(_generic(key), ref["x_rand"][:1], ref["y_rand"][:1]) <= TOLERANCE


@pytest.mark.slow
@pytest.mark.parametrize("key", MODEL_IDS)
def test_both_paths_match_tensorflow_on_every_stored_box(shared_dir: Path, key: str) -> None:
    _, ref = _reference(key)
    assert _max_diff(_mapped(key), ref["x_rand"], ref["y_rand"]) <= TOLERANCE
    assert _max_diff(_generic(key), ref["x_rand"], ref["y_rand"]) <= TOLERANCE


@pytest.mark.parametrize("key", MODEL_IDS)
def test_mapped_and_generic_agree_on_a_random_input(shared_dir: Path, key: str) -> None:
    x = torch.randn(1, 1, 32, 48, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        diff = (_mapped(key)(x) - _generic(key)(x)).abs().max()
    assert float(diff) <= 1e-5


def test_mapped_model_keeps_training_semantics(shared_dir: Path) -> None:
    """The mapped model is a plain AisArch: it can take a training step."""
    model = _mapped("models_random__unet_s")
    x = torch.randn(2, 1, 32, 32)
    y = (torch.rand(2, 1, 32, 32) > 0.5).float()
    loss = model.compute_loss(model(x), y)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()


def test_without_a_title_the_parameter_count_finds_the_architecture(shared_dir: Path) -> None:
    path = REFERENCE_MODELS[MODEL_IDS.index("models_random__resnet")]
    (payload,) = [b for n, b in read_members(path).items() if n.endswith(".h5")]
    model = load_keras_model(payload)
    assert isinstance(model, AisArch) and model.preset == "resnet"


def test_a_changed_activation_is_not_mapped_but_still_predicts(
    shared_dir: Path, tmp_path: Path
) -> None:
    """Same weights, different network: output verification must reject our architecture."""
    path = REFERENCE_MODELS[MODEL_IDS.index("models_random__eman2")]
    (payload,) = [b for n, b in read_members(path).items() if n.endswith(".h5")]
    h5 = tmp_path / "changed.h5"
    h5.write_bytes(payload)
    with h5py.File(h5, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        convs = [layer for layer in config["config"]["layers"] if layer["class_name"] == "Conv2D"]
        convs[1]["config"]["activation"] = "tanh"
        f.attrs["model_config"] = json.dumps(config)
    model = load_keras_model(h5, arch_title="Eman2", n_parameters=378_081)
    assert isinstance(model, KerasModel)
    out = model(torch.randn(1, 1, 32, 32))
    assert out.shape == (1, 1, 32, 32) and torch.isfinite(out).all()


# -- DeepFinder: a third-party Keras 2.1.6 3D U-Net ------------------------------------------------
def test_deepfinder_3d_unet_matches_tensorflow_logits(shared_dir: Path) -> None:
    folder = shared_dir / DEEPFINDER
    graph = read_keras_h5(folder / "deepfinder_shrec19_unet3d_keras2.1.6.h5")
    assert graph.keras_version == "2.1.6" and graph.n_parameters == 903_357
    with np.load(folder / "reference_io_tf2.15.1.npz") as ref:
        x = torch.from_numpy(ref["input_zyx"])[None, None]
        logits_ref, softmax_ref = ref["logits_center_zyxc"], ref["softmax_center_zyxc"]
    with torch.no_grad():
        logits = graph(x, logits=True)
    centre = logits[0, :, 16:40, 16:40, 16:40].permute(1, 2, 3, 0).numpy()
    assert np.abs(centre - logits_ref).max() <= 1e-3
    softmax = torch.softmax(torch.from_numpy(centre), dim=-1).numpy()
    assert np.abs(softmax - softmax_ref).max() <= 1e-4


def test_deepfinder_without_a_matching_architecture_is_a_generic_model(shared_dir: Path) -> None:
    model = load_keras_model(shared_dir / DEEPFINDER / "deepfinder_shrec19_unet3d_keras2.1.6.h5")
    assert isinstance(model, KerasModel) and not model.training
    assert model.min_size_multiple == 4 and model.hparams.in_channels == 1
    with torch.no_grad():
        out = model(torch.randn(1, 1, 8, 8, 8))
    assert out.shape == (1, 13, 8, 8, 8)
    assert torch.allclose(out.sum(1), torch.ones(1, 8, 8, 8), atol=1e-5)  # softmax output


# -- hand-made Keras files ------------------------------------------------------------------------
def _layer(name: str, cls: str, inputs: list[str] | None = None, **config: Any) -> dict:
    nodes = [[[n, 0, 0, {}] for n in inputs]] if inputs else []
    return {
        "name": name,
        "class_name": cls,
        "config": {"name": name, **config},
        "inbound_nodes": nodes,
    }


def _input(channels: int = 1, rank: int = 2) -> dict:
    return _layer("input_1", "InputLayer", batch_input_shape=[None, *[None] * rank, channels])


def _write_h5(
    path: Path,
    layers: list[dict],
    weights: dict[str, dict[str, np.ndarray]] | None = None,
    outputs: list[str] | None = None,
) -> Path:
    config = {
        "class_name": "Functional",
        "config": {
            "name": "model",
            "layers": layers,
            "input_layers": [[layers[0]["name"], 0, 0]],
            "output_layers": [[n, 0, 0] for n in (outputs or [layers[-1]["name"]])],
        },
    }
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config)
        f.attrs["keras_version"] = "2.15.0"
        f.attrs["backend"] = "tensorflow"
        root = f.create_group("model_weights")
        root.attrs["layer_names"] = [layer["name"].encode() for layer in layers]
        for layer in layers:
            name = layer["name"]
            group = root.create_group(name)
            arrays = (weights or {}).get(name, {})
            group.attrs["weight_names"] = [f"{name}/{k}:0".encode() for k in arrays]
            for k, a in arrays.items():
                group.create_dataset(f"{name}/{k}:0", data=np.asarray(a, np.float32))
    return path


def _run(path: Path, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    with torch.no_grad():
        return read_keras_h5(path)(x, **kwargs)


def test_lambda_layer_is_refused_and_never_unmarshalled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("code from the model file was unmarshalled")

    monkeypatch.setattr(marshal, "loads", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    code = "bm90IGV4ZWN1dGVk"  # base64 "not executed": stands in for marshalled bytecode
    layers = [
        _input(),
        _layer(
            "lambda_7", "Lambda", ["input_1"], function=[code, None, None], function_type="lambda"
        ),
    ]
    path = _write_h5(tmp_path / "evil.h5", layers)
    with pytest.raises(ModelFormatError) as err:
        read_keras_h5(path)
    message = str(err.value)
    assert "lambda_7" in message and "Lambda" in message and "refused" in message
    assert str(path) in message and "\n" not in message


@pytest.mark.parametrize("cls", ["MyCustomLayer", "TFOpLambda", "Flatten"])
def test_unknown_layer_class_is_refused_with_its_name(tmp_path: Path, cls: str) -> None:
    layers = [_input(), _layer("odd_layer", cls, ["input_1"])]
    with pytest.raises(ModelFormatError, match=f"'odd_layer'.*{cls}.*refused"):
        read_keras_h5(_write_h5(tmp_path / "odd.h5", layers))


def test_unknown_activation_is_refused(tmp_path: Path) -> None:
    conv = _layer("c", "Conv2D", ["input_1"], filters=1, kernel_size=[1, 1], activation="mish_x")
    weights = {"c": {"kernel": np.ones((1, 1, 1, 1)), "bias": np.zeros(1)}}
    with pytest.raises(ModelFormatError, match=r"mish_x.*refused"):
        read_keras_h5(_write_h5(tmp_path / "a.h5", [_input(), conv], weights))


def test_channels_first_is_refused(tmp_path: Path) -> None:
    conv = _layer("c", "Conv2D", ["input_1"], filters=1, kernel_size=[1, 1])
    conv["config"]["data_format"] = "channels_first"
    weights = {"c": {"kernel": np.ones((1, 1, 1, 1)), "bias": np.zeros(1)}}
    with pytest.raises(ModelFormatError, match="channels_first"):
        read_keras_h5(_write_h5(tmp_path / "cf.h5", [_input(), conv], weights))


def test_weights_that_do_not_fit_the_graph_are_a_clear_error(tmp_path: Path) -> None:
    conv = _layer("c", "Conv2D", ["input_1"], filters=2, kernel_size=[3, 3], padding="same")
    weights = {"c": {"kernel": np.ones((3, 3, 4, 2)), "bias": np.zeros(2)}}
    with pytest.raises(ModelFormatError, match=r"'c'.*4 input channels but receives 1"):
        read_keras_h5(_write_h5(tmp_path / "bad.h5", [_input(1), conv], weights))


def test_external_links_are_refused(tmp_path: Path) -> None:
    conv = _layer("c", "Conv2D", ["input_1"], filters=1, kernel_size=[1, 1])
    path = _write_h5(tmp_path / "x.h5", [_input(), conv])
    with h5py.File(path, "r+") as f:
        del f["model_weights/c"]
        f["model_weights/c"] = h5py.ExternalLink("/etc/other.h5", "/c")
    with pytest.raises(ModelFormatError, match="link; refused"):
        read_keras_h5(path)


def test_truncated_h5_is_a_one_line_error_naming_the_file(shared_dir: Path, tmp_path: Path) -> None:
    (payload,) = [
        b for n, b in read_members(REFERENCE_MODELS[0]).items() if n.endswith("_weights.h5")
    ]
    for i, cut in enumerate([64, len(payload) // 2, len(payload) - 4096]):
        path = tmp_path / f"cut{i}.h5"
        path.write_bytes(payload[:cut])
        with pytest.raises(ModelFormatError) as err:
            read_keras_h5(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)
        with pytest.raises(ModelFormatError, match="in memory"):
            read_keras_h5(payload[:cut], name="in memory")


def test_weights_only_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"conv2d"]
    with pytest.raises(ModelFormatError, match="no 'model_config'"):
        read_keras_h5(path)


# -- Keras semantics on hand-made graphs -----------------------------------------------------------
def test_tf_same_padding_facts() -> None:
    assert tf_same_pad(64, 4, 1) == (1, 2)  # even kernel, stride 1: asymmetric
    assert tf_same_pad(64, 4, 2) == (1, 1)  # stride 2 on an even input: symmetric
    assert tf_same_pad(65, 4, 2) == (1, 2)  # odd input: the extra pixel goes after
    assert tf_same_pad(64, 3, 2) == (0, 1)
    assert tf_same_pad(10, 3, 1, dilation=2) == (2, 2)


def test_strided_even_kernel_same_conv_counts_in_bounds_taps(tmp_path: Path) -> None:
    conv = _layer("c", "Conv2D", ["input_1"], filters=1, kernel_size=[4, 4], strides=[2, 2])
    conv["config"].update(padding="same", use_bias=False)
    path = _write_h5(tmp_path / "c.h5", [_input(), conv], {"c": {"kernel": np.ones((4, 4, 1, 1))}})
    out = _run(path, torch.ones(1, 1, 5, 5))
    rows = torch.tensor(
        [3.0, 4.0, 2.0]
    )  # windows -1..2, 1..4, 3..6 of 0..4 (pad 1 before, 2 after)
    assert torch.equal(out[0, 0], rows[:, None] * rows[None, :])


@pytest.mark.parametrize(
    ("k", "s", "n", "padding"),
    [(2, 2, 5, "same"), (3, 2, 5, "same"), (4, 2, 6, "same"), (3, 2, 4, "valid"), (5, 3, 4, "same"),
     (1, 2, 3, "same"), (1, 2, 3, "valid"), (4, 1, 5, "same")],
)  # fmt: skip
def test_conv_transpose_is_the_gradient_of_tf_conv(
    tmp_path: Path, k: int, s: int, n: int, padding: str
) -> None:
    """TensorFlow defines conv2d_transpose as the input gradient of conv2d with the same padding."""
    rng = np.random.default_rng(k * 100 + s * 10 + n)
    kernel = rng.standard_normal((k, k, 2, 3)).astype(np.float32)  # (kh, kw, out, in)
    bias = rng.standard_normal(2).astype(np.float32)
    layer = _layer("t", "Conv2DTranspose", ["input_1"], filters=2, kernel_size=[k, k])
    layer["config"].update(strides=[s, s], padding=padding)
    path = _write_h5(tmp_path / "t.h5", [_input(3), layer], {"t": {"kernel": kernel, "bias": bias}})
    x = torch.randn(1, 3, n, n + 1)
    y = _run(path, x)
    length = [m * s if padding == "same" else m * s + max(k - s, 0) for m in (n, n + 1)]
    assert list(y.shape[2:]) == length
    z = torch.zeros(1, 2, *length, requires_grad=True)
    pads: list[int] = []
    for size in reversed(length):
        total = max((-(-size // s) - 1) * s + k - size, 0) if padding == "same" else 0
        pads += [total // 2, total - total // 2]
    w = torch.from_numpy(kernel).permute(3, 2, 0, 1)  # forward conv: 2 channels -> 3
    forward = F.conv2d(F.pad(z, pads), w, stride=s)
    assert forward.shape == x.shape
    (grad,) = torch.autograd.grad(forward, z, grad_outputs=x)
    assert torch.allclose(y, grad + torch.from_numpy(bias).view(1, 2, 1, 1), atol=1e-5)


def test_same_pooling_pads_with_minus_infinity_and_averages_only_real_pixels(
    tmp_path: Path,
) -> None:
    cfg = {"pool_size": [2, 2], "strides": [2, 2], "padding": "same"}
    layers = [
        _input(),
        _layer("mp", "MaxPooling2D", ["input_1"], **cfg),
        _layer("ap", "AveragePooling2D", ["input_1"], **cfg),
    ]
    path = _write_h5(tmp_path / "p.h5", layers, outputs=["mp", "ap"])
    x = torch.arange(1.0, 10.0).view(1, 1, 3, 3)
    maxed, _ = _run(path, -x)
    _, averaged = _run(path, x)
    assert torch.equal(maxed[0, 0], torch.tensor([[-1.0, -3.0], [-7.0, -9.0]]))
    assert torch.equal(averaged[0, 0], torch.tensor([[3.0, 4.5], [7.5, 9.0]]))


def test_batch_norm_uses_the_file_epsilon_without_center_or_scale(tmp_path: Path) -> None:
    bn = _layer("bn", "BatchNormalization", ["input_1"], axis=[3], epsilon=0.5, momentum=0.8)
    bn["config"].update(center=False, scale=False)
    weights = {"bn": {"moving_mean": np.ones(2), "moving_variance": np.full(2, 3.0)}}
    path = _write_h5(tmp_path / "bn.h5", [_input(2), bn], weights)
    x = torch.randn(1, 2, 4, 4)
    assert torch.allclose(_run(path, x), (x - 1) / np.sqrt(3.5), atol=1e-6)


def test_padding_cropping_concatenation_and_relu_variants(tmp_path: Path) -> None:
    layers = [
        _input(2),
        _layer("zp", "ZeroPadding2D", ["input_1"], padding=[[1, 2], [3, 0]]),
        _layer("cr", "Cropping2D", ["zp"], cropping=[[1, 0], [0, 2]]),
        _layer("relu", "ReLU", ["cr"], max_value=1.0, negative_slope=0.1, threshold=0.5),
        _layer("leaky", "LeakyReLU", ["cr"]),  # Keras 2 default alpha 0.3
        _layer("cat", "Concatenate", ["relu", "leaky"], axis=1),  # along H
    ]
    path = _write_h5(tmp_path / "z.h5", layers)
    x = torch.randn(1, 2, 4, 5)
    padded = F.pad(x, (3, 0, 1, 2))[:, :, 1:, :-2]
    relu = torch.where(padded >= 0.5, padded, 0.1 * (padded - 0.5)).clamp(max=1.0)
    expected = torch.cat([relu, F.leaky_relu(padded, 0.3)], dim=2)
    assert torch.allclose(_run(path, x), expected)


def test_upsampling_3d_and_softmax_logits(tmp_path: Path) -> None:
    conv = _layer(
        "c", "Conv3D", ["input_1"], filters=3, kernel_size=[1, 1, 1], activation="softmax"
    )
    layers = [_input(2, rank=3), conv, _layer("up", "UpSampling3D", ["c"], size=[2, 1, 3])]
    kernel = np.random.default_rng(0).standard_normal((1, 1, 1, 2, 3))
    path = _write_h5(tmp_path / "u.h5", layers, {"c": {"kernel": kernel, "bias": np.zeros(3)}})
    x = torch.randn(1, 2, 2, 3, 4)
    out = _run(path, x)
    assert out.shape == (1, 3, 4, 3, 12)
    assert torch.allclose(out.sum(1), torch.ones(1, 4, 3, 12), atol=1e-6)
    assert torch.equal(out[:, :, ::2, :, ::3], out[:, :, 1::2, :, 2::3])
    with pytest.raises(ModelFormatError, match="no activation"):
        read_keras_h5(path)(x, logits=True)


def test_a_layer_called_twice_and_a_keras_2_1_sequential_model(tmp_path: Path) -> None:
    conv = _layer("c", "Conv2D", ["input_1"], filters=1, kernel_size=[1, 1])
    conv["inbound_nodes"].append([["c", 0, 0, {}]])  # shared layer: c(c(x))
    weights = {"c": {"kernel": np.full((1, 1, 1, 1), 2.0), "bias": np.ones(1)}}
    path = _write_h5(tmp_path / "shared.h5", [_input(), conv], weights)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        config["config"]["output_layers"] = [["c", 1, 0]]
        f.attrs["model_config"] = json.dumps(config)
    x = torch.randn(1, 1, 3, 3)
    assert torch.allclose(_run(path, x), 2 * (2 * x + 1) + 1)

    seq = tmp_path / "seq.h5"
    _write_h5(seq, [_input(), conv], weights)
    first = {
        "class_name": "Conv2D",
        "config": {**conv["config"], "batch_input_shape": [None, 3, 3, 1]},
    }
    with h5py.File(seq, "r+") as f:
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": [first]})
    assert torch.allclose(_run(seq, x), 2 * x + 1)


def test_generic_model_rejects_wrong_input_shapes(tmp_path: Path) -> None:
    conv = _layer("c", "Conv2D", ["input_1"], filters=1, kernel_size=[1, 1], activation="sigmoid")
    weights = {"c": {"kernel": np.ones((1, 1, 2, 1)), "bias": np.zeros(1)}}
    path = _write_h5(tmp_path / "in.h5", [_input(2), conv], weights)
    model = load_keras_model(path)
    assert isinstance(model, KerasModel) and model.hparams.in_channels == 2
    with pytest.raises(ValueError, match=r"expects \(B, 2, H, W\)"):
        model(torch.randn(1, 1, 8, 8))


# -- mapping networks with BatchNorm, transposed convs and even kernels ---------------------------
class _Graph:
    """Builds a small Keras functional config with random weights, layer by layer."""

    def __init__(self, channels: int, seed: int = 0) -> None:
        self.layers = [_input(channels)]
        self.weights: dict[str, dict[str, np.ndarray]] = {}
        self.rng = np.random.default_rng(seed)

    def add(self, cls: str, inputs: list[str], arrays: dict | None = None, **config: Any) -> str:
        name = f"{cls.lower()}_{len(self.layers)}"
        self.layers.append(_layer(name, cls, inputs, **config))
        if arrays:
            self.weights[name] = arrays
        return name

    def conv(self, x: str, cin: int, cout: int, k: int = 3, s: int = 1, act: str = "relu") -> str:
        arrays = {
            "kernel": self.rng.normal(0, 0.5, (k, k, cin, cout)),
            "bias": self.rng.normal(0, 0.1, cout),
        }
        cfg = {"kernel_size": [k, k], "strides": [s, s], "padding": "same", "activation": act}
        return self.add("Conv2D", [x], arrays, filters=cout, **cfg)

    def up(self, x: str, cin: int, cout: int) -> str:
        arrays = {
            "kernel": self.rng.normal(0, 0.5, (2, 2, cout, cin)),
            "bias": self.rng.normal(0, 0.1, cout),
        }
        cfg = {"kernel_size": [2, 2], "strides": [2, 2], "padding": "same"}
        return self.add("Conv2DTranspose", [x], arrays, filters=cout, **cfg)

    def bn(self, x: str, c: int, momentum: float = 0.99) -> str:
        arrays = {
            "gamma": self.rng.uniform(0.5, 1.5, c),
            "beta": self.rng.normal(0, 0.1, c),
            "moving_mean": self.rng.normal(0, 0.2, c),
            "moving_variance": self.rng.uniform(0.5, 2.0, c),
        }
        return self.add(
            "BatchNormalization", [x], arrays, axis=[3], momentum=momentum, epsilon=1e-3
        )

    def write(self, path: Path) -> Path:
        return _write_h5(path, self.layers, self.weights)


def _check_mapping(graph_path: Path, model: AisArch) -> None:
    from ais_torch.formats.keras.read import map_weights

    graph = read_keras_h5(graph_path)
    assert map_weights(graph, model) <= TOLERANCE
    x = torch.randn(2, 1, 24, 40)
    with torch.no_grad():
        assert torch.allclose(model(x), graph(x), atol=1e-5)


def test_a_small_unet_with_batchnorm_and_transposed_convs_maps(tmp_path: Path) -> None:
    from ais_torch import archs

    g = _Graph(1)
    skip = g.bn(g.conv("input_1", 1, 4), 4)
    x = g.add("MaxPooling2D", [skip], pool_size=[2, 2], strides=[2, 2], padding="valid")
    x = g.add("Dropout", [g.bn(g.conv(x, 4, 8), 8)], rate=0.25)
    x = g.add("Concatenate", [g.up(x, 8, 4), skip], axis=-1)
    g.conv(g.bn(g.conv(x, 8, 4), 4), 4, 1, k=1, act="sigmoid")
    model = archs.build(
        "unet", encoder=[[4]], bottleneck=[8], decoder=[[4]], up_widths=[4], batch_norm=True
    )
    _check_mapping(g.write(tmp_path / "unet.h5"), model)


def test_a_small_pix2pix_generator_with_even_kernels_maps(tmp_path: Path) -> None:
    from ais_torch import archs

    g = _Graph(1)
    d0 = g.add("LeakyReLU", [g.conv("input_1", 1, 4, k=4, s=2, act="linear")], alpha=0.2)
    d1 = g.add("LeakyReLU", [g.conv(d0, 4, 8, k=4, s=2, act="linear")], alpha=0.2)
    x = g.add("UpSampling2D", [g.bn(d1, 8, momentum=0.8)], size=[2, 2])
    x = g.add("Concatenate", [g.bn(g.conv(x, 8, 4, k=4), 4, momentum=0.8), d0])
    g.conv(g.add("UpSampling2D", [x], size=[2, 2]), 8, 1, k=4, act="sigmoid")
    model = archs.build("pix2pix", down_widths=[4, 8], disc_widths=[4])
    _check_mapping(g.write(tmp_path / "p2p.h5"), model)
