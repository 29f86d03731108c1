"""Writing .scnm files for the original Ais: Keras 2.15 .h5 layout, round trips, metadata."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import ais_torch
from ais_torch import archs
from ais_torch.archs.presets import PRESETS
from ais_torch.commands.export import main as export_main
from ais_torch.errors import ModelFormatError
from ais_torch.formats.keras.emit import KerasBuilder, NoKerasTwin, keras_functional
from ais_torch.formats.keras.read import KerasModel, read_keras_h5
from ais_torch.formats.keras.write import (
    ORIGINAL_METADATA_KEYS,
    _string_list,
    keras_h5_bytes,
    original_metadata,
    verify_keras_h5,
    write_original_scnm,
)
from ais_torch.formats.scnm import ModelMetadata, load_scnm, read_members, save_scnm

# The fast set covers plain, skip-connection and transposed-conv graphs; the layer kinds of the
# others (BatchNorm, LeakyReLU, Add, branches) are checked exactly by the rewrite tests below.
FAST_PRESETS = ["eman2", "unet_s", "vggnet_s"]
SLOW_PRESETS = [p for p in PRESETS if p not in FAST_PRESETS]
RANDOM_REFS = ["eman2", "inceptionnet", "resnet", "unet_s", "vggnet_s"]


def randomised(preset: str, seed: int = 0, **hparams: object) -> torch.nn.Module:
    """A preset whose every weight, bias and BatchNorm statistic is random (so mix-ups show)."""
    torch.manual_seed(seed)
    model = archs.build(preset, **hparams).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.dtype.is_floating_point or t.ndim != 1:  # kernels keep Keras init
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            else:
                t.add_(torch.randn(t.shape, generator=gen) * 0.05)  # biases, BN
    return model


def _h5(path: Path) -> bytes:
    (payload,) = [b for n, b in read_members(path).items() if n.endswith("_weights.h5")]
    return payload


def _meta(path: Path) -> dict:
    (payload,) = [b for n, b in read_members(path).items() if n.endswith("_metadata.json")]
    return json.loads(payload)


def _probe(model: torch.nn.Module) -> torch.Tensor:
    m = int(model.min_size_multiple)
    gen = torch.Generator().manual_seed(7)
    slab = (8,) if getattr(model, "n_spatial_dims", 2) == 3 else ()  # ezm-3d: a short slab
    return torch.randn(2, model.hparams.in_channels, *slab, m * max(1, 32 // m),
                       m * max(2, 48 // m), generator=gen)  # fmt: skip


def _round_trip(preset: str, tmp_path: Path) -> None:
    model = randomised(preset)
    meta = ModelMetadata(title="Membrane", apix=10.0, normalization="global_mad")
    path = write_original_scnm(tmp_path / f"{preset}.scnm", model, meta)
    again = ais_torch.load_model(str(path))
    assert type(again) is type(model) and again.preset == preset
    ours, theirs = model.state_dict(), again.state_dict()
    keys = [k for k in ours if not k.startswith("discriminator.")]  # Pix2pix: generator only
    for key in keys:
        assert torch.equal(ours[key], theirs[key]), key
    x = _probe(model)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))


@pytest.mark.parametrize("preset", FAST_PRESETS)
def test_ours_to_keras_to_ours_is_identical(preset: str, tmp_path: Path) -> None:
    _round_trip(preset, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("preset", SLOW_PRESETS)
def test_every_other_preset_round_trips_identically(preset: str, tmp_path: Path) -> None:
    _round_trip(preset, tmp_path)


# -- the original's own files, rewritten --------------------------------------------------------
def _attr_types(obj: h5py.HLObject) -> dict[str, tuple]:
    """Each attribute's HDF5 type: class, string kind (vlen/fixed), charset, and shape."""
    out = {}
    for name in obj.attrs:
        attr = h5py.h5a.open(obj.id, name.encode())
        kind = attr.get_type()
        text = isinstance(kind, h5py.h5t.TypeStringID)
        out[name] = (
            kind.get_class(),
            kind.is_variable_str() if text else kind.get_size(),
            kind.get_cset() if text else None,
            attr.get_space().get_simple_extent_dims(),
        )
    return out


def _assert_same_h5(ours: bytes, original: bytes) -> None:
    with h5py.File(io.BytesIO(ours), "r") as a, h5py.File(io.BytesIO(original), "r") as b:
        assert sorted(a.attrs) == sorted(b.attrs) == ["backend", "keras_version", "model_config"]
        assert a.attrs["model_config"] == b.attrs["model_config"]  # the same JSON text
        assert _attr_types(a) == _attr_types(b)
        wa, wb = a["model_weights"], b["model_weights"]
        assert list(wa.attrs["layer_names"]) == list(wb.attrs["layer_names"])
        assert _attr_types(wa) == _attr_types(wb)
        assert list(wa) == list(wb)  # incl. top_level_model_weights
        for layer in wb:
            assert _attr_types(wa[layer]) == _attr_types(wb[layer]), layer
            names = list(wb[layer].attrs["weight_names"])
            assert list(wa[layer].attrs["weight_names"]) == names
            for name in names:
                da, db = wa[layer][name], wb[layer][name]
                assert da.dtype == db.dtype == np.float32 and da.shape == db.shape
                assert np.array_equal(da[()], db[()]), f"{layer}/{name}"


def _rewrite(path: Path, tmp_path: Path) -> Path:
    model, meta = load_scnm(path)
    return write_original_scnm(tmp_path / path.name, model, meta)


@pytest.mark.parametrize("name", RANDOM_REFS)
def test_rewriting_an_original_file_gives_the_same_h5(
    shared_dir: Path, tmp_path: Path, name: str
) -> None:
    source = shared_dir / "reference" / "models_random" / f"{name}.scnm"
    written = _rewrite(source, tmp_path)
    _assert_same_h5(_h5(written), _h5(source))
    # and our own reading of it still reproduces TensorFlow's stored prediction
    with np.load(shared_dir / "reference" / "keras_refs" / f"models_random__{name}.npz") as ref:
        graph = read_keras_h5(_h5(written))
        with torch.no_grad():
            y = graph(torch.from_numpy(ref["x_rand"][:1])).numpy()
        assert float(np.abs(y - ref["y_rand"][:1]).max()) <= 1e-4


@pytest.mark.parametrize("rel", ["Eman2/Membrane.scnm", "VGGNet_M/Carbon.scnm"])
def test_rewriting_a_trained_original_keeps_h5_and_metadata(
    shared_dir: Path, tmp_path: Path, rel: str
) -> None:
    source = shared_dir / "reference" / "models" / rel
    written = _rewrite(source, tmp_path)
    assert sorted(read_members(written)) == sorted(read_members(source))  # member names
    _assert_same_h5(_h5(written), _h5(source))
    ours, theirs = _meta(written), _meta(source)
    assert tuple(ours) == tuple(theirs) == ORIGINAL_METADATA_KEYS
    # model_enum of the hidden Eman2 was an index in a patched list; ours says "none"
    differ = {k for k in theirs if ours[k] != theirs[k]}
    assert differ <= {"model_enum"}
    assert ours["model_enum"] == (-1 if "Eman2" in rel else theirs["model_enum"])


# -- metadata --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("preset", "hparams", "arch", "enum"),
    [
        ("vggnet_m", {}, "VGGNet M", 10),
        ("unet_s", {}, "UNet S", 8),
        ("eman2", {}, "Eman2", -1),
        ("resnet_paper", {}, "ResNet", -1),
        ("vggnet", {"encoder": [[8], [8], [8]]}, "VGGNet", -1),  # resized: no standard title
    ],
)
def test_metadata_names_the_original_architecture(
    preset: str, hparams: dict, arch: str, enum: int
) -> None:
    with torch.device("meta"):
        model = archs.build(preset, **hparams)
    meta = ModelMetadata(title="Carbon", apix=12.5, loss=0.25, normalization="per_slice")
    values = original_metadata(model, meta)
    assert (values["arch"], values["model_enum"]) == (arch, enum)
    assert values["normalization"] is None  # the original's legacy per-slice mode
    assert values["info"].startswith(f"{arch} (") and "12.5, 0.2500" in values["info"]
    assert values["n_parameters"] == model.n_parameters and values["model_depth"] == 1


def test_original_title_prefers_the_stored_variant_name() -> None:
    with torch.device("meta"):
        model = archs.build("ezm2d")
    meta = ModelMetadata(title="M", arch="ezm-2d-dice")
    assert original_metadata(model, meta)["arch"] == "ezm-2d-dice"


# -- the .h5 format details ------------------------------------------------------------------
def test_input_layer_is_batch_one_and_free_size_with_the_model_depth() -> None:
    config = keras_functional(randomised("unet_s", in_channels=3)).model_config()
    first = config["config"]["layers"][0]
    assert first["class_name"] == "InputLayer"
    assert first["config"]["batch_input_shape"] == [1, None, None, 3]
    pix = keras_functional(randomised("pix2pix")).model_config()["config"]["layers"][0]
    assert pix["config"]["batch_input_shape"] == [None, None, None, 1]  # saved as built


def test_long_string_lists_are_split_like_keras(tmp_path: Path) -> None:
    names = [f"layer_with_a_long_name_{i:05d}" for i in range(3000)]  # > 64 KiB
    with h5py.File(tmp_path / "x.h5", "w") as f:
        _string_list(f, "layer_names", names)
        parts = sorted(k for k in f.attrs if k.startswith("layer_names"))
        assert parts == ["layer_names0", "layer_names1"]
        assert [n for p in parts for n in f.attrs[p]] == names


def test_verification_refuses_a_file_of_another_model() -> None:
    model, other = randomised("eman2", seed=1), randomised("eman2", seed=2)
    payload = keras_h5_bytes(keras_functional(other))
    assert verify_keras_h5(keras_h5_bytes(keras_functional(model)), model) == 0.0
    with pytest.raises(ModelFormatError, match="does not reproduce"):
        verify_keras_h5(payload, model)


def test_models_without_a_keras_twin_are_refused(shared_dir: Path, tmp_path: Path) -> None:
    graph = read_keras_h5(_h5(shared_dir / "reference" / "models_random" / "eman2.scnm"))
    with pytest.raises(NoKerasTwin, match="no Keras twin"):
        write_original_scnm(tmp_path / "x.scnm", KerasModel(graph), ModelMetadata(title="X"))
    assert not (tmp_path / "x.scnm").exists()


class PluginNet(archs.AisArch):
    """A third party's architecture, as a plugin module would define it."""

    title = "PluginNet"

    def __init__(self, **common: object) -> None:
        super().__init__(**common)
        self.conv = torch.nn.Conv2d(self.hparams.in_channels, 4, 3, padding=1)
        self.head = torch.nn.Conv2d(4, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(torch.relu(self.conv(x))))


class PluginNetWithKeras(PluginNet):
    """The same network, joining Keras export by defining the method our archs define."""

    def keras_graph(self, builder: KerasBuilder, x: str) -> str:
        return builder.conv(builder.conv(x, self.conv, "relu"), self.head, "sigmoid")


def test_a_plugin_architecture_with_keras_graph_is_written_and_verified() -> None:
    torch.manual_seed(0)
    model = PluginNetWithKeras(in_channels=2).eval()
    graph = keras_functional(model)
    layers = graph.model_config()["config"]["layers"]
    assert [layer["class_name"] for layer in layers] == ["InputLayer", "Conv2D", "Conv2D"]
    assert layers[0]["config"]["batch_input_shape"] == [1, None, None, 2]
    assert graph.n_parameters == model.n_parameters
    assert verify_keras_h5(keras_h5_bytes(graph), model) < 1e-5  # the .h5 computes the same


def test_a_plugin_architecture_without_keras_graph_has_no_twin() -> None:
    with pytest.raises(NoKerasTwin, match=r"PluginNet has no Keras twin.*keras_graph"):
        keras_functional(PluginNet())


# -- the command ---------------------------------------------------------------------------------
def test_export_command_writes_a_scnm_the_reader_opens(tmp_path: Path) -> None:
    model = randomised("unet_s")
    meta = ModelMetadata(title="Membrane", apix=10.0, threshold=0.4, normalization="global_mad")
    meta.arch_name = "unet"
    meta.arch_hparams = dict(model.hparams)
    ours = save_scnm(tmp_path / "Membrane.scnm", model, meta)
    assert export_main([f"model={ours}", "format=keras"]) == 0
    out = tmp_path / "Membrane_original.scnm"
    with tarfile.open(out) as tar:
        assert sorted(tar.getnames()) == ["Membrane_metadata.json", "Membrane_weights.h5"]
    saved = _meta(out)
    assert (saved["arch"], saved["threshold"], saved["normalization"]) == (
        "UNet S",
        0.4,
        "global_mad",
    )
    again = ais_torch.load_model(str(out))
    x = _probe(model)
    with torch.no_grad():
        assert torch.equal(again(x), model(x))


def test_export_keras_refuses_an_opset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = randomised("eman2")
    ours = save_scnm(tmp_path / "m.scnm", model, ModelMetadata(title="m", arch_name="eman2"))
    with pytest.raises(SystemExit):
        export_main([f"model={ours}", "format=keras", "opset=17"])
    assert "opset= only applies to format=onnx" in capsys.readouterr().err
