"""The example plugin in examples/third_party_arch, as if pip-installed."""

from __future__ import annotations

from pathlib import Path

from ais_torch import archs
from ais_torch.archs.testing import check_arch

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "third_party_arch"


def read_entry_points() -> dict[str, str]:
    """The example's entry points, read from its own pyproject.toml."""
    import tomllib

    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    return project["entry-points"]["ais_torch.archs"]


def test_example_declares_tiny_net() -> None:
    assert read_entry_points() == {"tiny_net": "tiny_arch.net:TinyNet"}


def test_installed_example_is_found_built_and_meets_the_contract(fake_dist, tmp_path) -> None:
    # What `pip install examples/third_party_arch` puts on sys.path: the package + its dist-info.
    fake_dist("tiny_arch", "0.1.0", read_entry_points(), extra_path=EXAMPLE)
    assert "tiny_net" in archs.available()
    assert archs.describe("tiny_net")["package"] == "tiny_arch"
    model = archs.build("tiny_net", width=4)
    assert model.title == "TinyNet" and model.hparams.width == 4
    check_arch("tiny_net", tmp_dir=tmp_path)


def test_example_presets_and_keras_twin_join_through_the_same_doors(fake_dist) -> None:
    """The example registers a preset and a Keras emitter beside its class, as ais_torch does."""
    from ais_torch.formats.keras.emit import keras_functional

    fake_dist("tiny_arch", "0.1.0", read_entry_points(), extra_path=EXAMPLE)
    assert "tiny_net_wide" in archs.available()
    model = archs.build("tiny_net_wide")
    assert model.hparams.width == 32 and model.preset == "tiny_net_wide"
    layers = keras_functional(model).model_config()["config"]["layers"]
    assert [layer["class_name"] for layer in layers] == ["InputLayer", "Conv2D", "Conv2D"]
    assert layers[1]["config"]["filters"] == 32
