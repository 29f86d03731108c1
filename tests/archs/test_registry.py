"""The entry-point registry: discovery, presets, and an actionable error for every failure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ais_torch import archs
from ais_torch.archs import registry
from ais_torch.archs.presets import DEFAULT_PRESET, ORIGINAL_TITLES, PRESETS, preset_for_title
from ais_torch.errors import ArchPluginError, ConfigError

CONF_ARCH = Path(__file__).resolve().parents[2] / "conf" / "arch"
OUR_ENTRY_POINTS = {
    "eman2",
    "ezm2d",
    "ezm3d",
    "inceptionnet",
    "pix2pix",
    "resnet",
    "unet",
    "vggnet",
}

PLUGIN_ARCH = """
from ais_torch.archs import AisArch
import torch

class Good(AisArch):
    title = "Good"
    def __init__(self, **common):
        super().__init__(**common)
        self.conv = torch.nn.Conv2d(1, 1, 1)
    def forward(self, x):
        return torch.sigmoid(self.conv(x))
"""


def test_our_entry_points_and_every_preset_are_available() -> None:
    names = archs.available()
    assert names == sorted(names)
    assert OUR_ENTRY_POINTS <= set(names)
    assert set(PRESETS) <= set(names)


def test_importing_does_not_import_torch() -> None:
    """Presets are declared beside their (torch) classes, so only listing loads those modules."""
    code = (
        "import sys, ais_torch.archs as a; assert a.DEFAULT_PRESET == 'vggnet_m'; "
        "assert 'torch' not in sys.modules and 'lightning' not in sys.modules; "
        "assert 'vggnet_m' in a.available() and a.PRESETS['vggnet_m'] == ('vggnet', {})"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_default_architecture_is_vggnet_m() -> None:
    assert DEFAULT_PRESET == "vggnet_m"
    assert ORIGINAL_TITLES["VGGNet M"] == DEFAULT_PRESET
    assert archs.build(DEFAULT_PRESET).n_parameters == 5_053_955


def test_presets_point_at_entry_points_and_shadow_only_defaults() -> None:
    for name, (arch, hparams) in PRESETS.items():
        assert arch in OUR_ENTRY_POINTS, name
        if name in OUR_ENTRY_POINTS:
            assert name == arch and hparams == {}, f"preset {name} must be its class's default"


def test_original_titles_map_to_presets_and_counts_disambiguate() -> None:
    assert set(ORIGINAL_TITLES.values()) <= set(PRESETS)
    for title in ["Eman2", "InceptionNet", "ResNet", "Pix2pix", "ezm-2d", "UNet S", "UNet M",
                  "UNet L", "VGGNet S", "VGGNet M", "VGGNet L", "VGGNet X"]:  # fmt: skip
        assert title in ORIGINAL_TITLES
    assert preset_for_title("VGGNet L") == "vggnet_l"
    assert preset_for_title("VGGNet L", 17_521_921) == "vggnet_l_v1"
    assert preset_for_title("ResNet", 4_887_265) == "resnet_paper"
    assert preset_for_title("Pix2pix", 29_249_409) == "pix2pix_paper"
    with pytest.raises(ConfigError, match="VGGNet Q"):
        preset_for_title("VGGNet Q")


def test_build_applies_preset_then_overrides_and_records_the_arch() -> None:
    model = archs.build("vggnet_s", learning_rate=5e-4)
    assert model.hparams.encoder == [[64, 64], [128, 128], [256, 256]]
    assert model.hparams.learning_rate == 5e-4
    assert model.arch_name == "vggnet"
    assert type(model) is archs.load("vggnet_s") is archs.load("vggnet")


def test_build_turns_omegaconf_containers_into_plain_lists() -> None:
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"widths": [8, 16]})
    model = archs.build("resnet", widths=cfg.widths)
    assert model.hparams.widths == [8, 16]
    assert type(model.hparams.widths) is list


def test_unknown_hyperparameter_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="depth"):
        archs.build("vggnet_m", depth=3)


def test_describe_names_the_package() -> None:
    info = archs.describe("unet_l")
    assert info["arch"] == "unet"
    assert info["target"] == "ais_torch.archs.unet:UNet"
    assert info["package"].replace("-", "_") == "ais_torch"
    assert info["preset_hparams"]["bottleneck"] == [1024, 1024]


def test_unknown_name_lists_what_is_available() -> None:
    with pytest.raises(ArchPluginError, match=r"unknown architecture 'vgnet_m'.*vggnet_m"):
        archs.build("vgnet_m")


def test_empty_group_hints_at_installing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry.md, "entry_points", lambda **_: [])
    registry.refresh()
    try:
        assert archs.available() == []
        with pytest.raises(ArchPluginError, match=r"pip install -e \."):
            archs.load("vggnet_m")
    finally:
        monkeypatch.undo()
        registry.refresh()


def test_plugin_is_discovered_and_built(fake_dist) -> None:
    fake_dist(
        "goodpkg", entry_points={"good_net": "goodmod:Good"}, files={"goodmod.py": PLUGIN_ARCH}
    )
    assert "good_net" in archs.available()
    model = archs.build("good_net")
    assert model.title == "Good"
    assert archs.describe("good_net")["package"] == "goodpkg"


PLUGIN_WITH_PRESETS = (
    PLUGIN_ARCH.replace("def __init__(self, **common)", "def __init__(self, *, width=1, **common)")
    + """
from ais_torch.archs import register_preset

register_preset("good_net_wide", Good, {"width": 4}, titles=("Good W",))
"""
)


def test_plugin_registers_presets_beside_its_class(fake_dist) -> None:
    fake_dist(
        "goodpkg",
        entry_points={"good_net": "goodmod:Good"},
        files={"goodmod.py": PLUGIN_WITH_PRESETS},
    )
    assert {"good_net", "good_net_wide"} <= set(archs.available())
    assert PRESETS["good_net_wide"] == ("good_net", {"width": 4})
    model = archs.build("good_net_wide", learning_rate=5e-4)
    assert model.hparams.width == 4 and model.hparams.learning_rate == 5e-4
    assert (model.arch_name, model.preset) == ("good_net", "good_net_wide")
    assert archs.describe("good_net_wide")["package"] == "goodpkg"
    assert preset_for_title("Good W") == "good_net_wide"


def test_plugin_presets_go_when_the_plugin_is_disabled(fake_dist, monkeypatch) -> None:
    fake_dist(
        "goodpkg",
        entry_points={"good_net": "goodmod:Good"},
        files={"goodmod.py": PLUGIN_WITH_PRESETS},
    )
    assert "good_net_wide" in archs.available()
    monkeypatch.setenv("AIS_TORCH_DISABLE_PLUGINS", "1")
    registry.refresh()
    assert "good_net_wide" not in archs.available()
    with pytest.raises(ArchPluginError, match="unknown architecture 'good_net_wide'"):
        archs.build("good_net_wide")


def test_a_preset_name_registered_by_two_classes_names_both() -> None:
    from ais_torch.archs.presets import register_preset
    from ais_torch.archs.resnet import ResNet

    with pytest.raises(ArchPluginError, match=r"unet_m.*ais_torch.archs.unet:UNet.*resnet:ResNet"):
        register_preset("unet_m", ResNet)


def test_plugins_can_be_disabled(fake_dist, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dist(
        "goodpkg", entry_points={"good_net": "goodmod:Good"}, files={"goodmod.py": PLUGIN_ARCH}
    )
    monkeypatch.setenv("AIS_TORCH_DISABLE_PLUGINS", "1")
    registry.refresh()
    names = archs.available()
    assert "good_net" not in names
    assert "vggnet_m" in names


def test_duplicate_name_from_two_packages_names_both(fake_dist) -> None:
    fake_dist("alphapkg", "1.0", {"twin": "alphamod:Twin"})
    fake_dist("betapkg", "2.0", {"twin": "betamod:Twin"})
    with pytest.raises(ArchPluginError) as info:
        archs.available()
    message = str(info.value)
    assert "'twin'" in message
    assert "alphapkg 1.0" in message and "betapkg 2.0" in message


def test_same_target_twice_is_not_a_conflict(fake_dist) -> None:
    files = {"goodmod.py": PLUGIN_ARCH}
    fake_dist("goodpkg", entry_points={"good_net": "goodmod:Good"}, files=files)
    fake_dist("goodpkg_mirror", entry_points={"good_net": "goodmod:Good"})
    assert archs.available().count("good_net") == 1


def test_plugin_may_not_take_one_of_our_names(fake_dist) -> None:
    fake_dist("squatter", entry_points={"vggnet": "squat:Net"})
    with pytest.raises(ArchPluginError, match=r"squatter 0\.3"):
        archs.available()


def test_plugin_may_not_take_a_preset_name(fake_dist) -> None:
    fake_dist("squatter", entry_points={"unet_l": "squat:Net"})
    with pytest.raises(ArchPluginError, match="clashes with ais_torch's preset"):
        archs.available()


def test_plugin_that_fails_to_import(fake_dist) -> None:
    fake_dist("foo", "0.3", {"x": "foomod:Net"}, {"foomod.py": "import not_a_real_module_xyz\n"})
    assert "x" in archs.available()  # listing never imports plugin code
    with pytest.raises(ArchPluginError) as info:
        archs.build("x")
    message = str(info.value)
    assert message.startswith("architecture 'x' from package foo 0.3 failed to import: ")
    assert "not_a_real_module_xyz" in message
    assert message.endswith("fix or uninstall foo")


def test_pytorch_lightning_subclass_is_refused_with_the_fix(fake_dist) -> None:
    pytest.importorskip("pytorch_lightning")
    code = """
    import pytorch_lightning as pl

    class Old(pl.LightningModule):
        title = "Old"
    """
    fake_dist("oldpkg", entry_points={"old_net": "oldmod:Old"}, files={"oldmod.py": code})
    with pytest.raises(ArchPluginError) as info:
        archs.load("old_net")
    message = str(info.value)
    assert "oldpkg" in message
    assert "pytorch_lightning.LightningModule" in message
    assert "lightning.pytorch" in message and "AisArch" in message


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (
            "import lightning.pytorch as L\nclass Net(L.LightningModule):\n    pass\n",
            "not an ais_torch.archs.AisArch",
        ),
        ("class Net:\n    pass\n", "not a subclass of ais_torch.archs.AisArch"),
        ("Net = 3\n", "not a class"),
        (
            "from ais_torch.archs import AisArch\nclass Net(AisArch):\n    pass\n",
            "sets no `title`",
        ),
    ],
    ids=["lightning-module", "plain-class", "not-a-class", "no-title"],
)
def test_targets_that_are_not_arch_classes(fake_dist, code: str, expected: str) -> None:
    fake_dist("badpkg", entry_points={"bad_net": "badmod:Net"}, files={"badmod.py": code})
    with pytest.raises(ArchPluginError, match=expected) as info:
        archs.load("bad_net")
    assert "badpkg 0.3" in str(info.value)


def test_refresh_forgets_removed_plugins(fake_dist) -> None:
    root = fake_dist("goodpkg", entry_points={"good_net": "goodmod:Good"})
    assert "good_net" in archs.available()
    sys.path.remove(str(root))
    try:
        registry.refresh()
        assert "good_net" not in archs.available()
    finally:
        sys.path.insert(0, str(root))


def _composed_arch(option: str) -> dict[str, object]:
    """``conf/arch/<option>.yaml`` as Hydra composes it (with its ``defaults``)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(str(CONF_ARCH.parent), version_base=None):
        cfg = compose("train", overrides=[f"arch={option}"])
    return OmegaConf.to_container(cfg.arch)


def test_every_preset_has_a_hydra_config_that_only_names_it() -> None:
    from omegaconf import OmegaConf

    # plugin.yaml is the generic door for third-party architectures (name given at run time);
    # base.yaml is what every option extends
    assert {p.stem for p in CONF_ARCH.glob("*.yaml")} - {"plugin", "base"} == set(PRESETS)
    for name in PRESETS:
        own = OmegaConf.to_container(OmegaConf.load(CONF_ARCH / f"{name}.yaml"))
        assert own == {"defaults": ["base", "_self_"], "name": name}, name


def test_preset_configs_carry_no_hyperparameter_values() -> None:
    """Every value comes from the registration: the composed YAML leaves them all unset."""
    from ais_torch.archs.base import COMMON_HPARAMS

    for name in ["unet_s", "pix2pix_paper", "ezm2d_bxe"]:
        cfg = _composed_arch(name)
        assert cfg.pop("_target_") == "ais_torch.archs.build"
        assert cfg.pop("name") == name
        assert set(cfg) == COMMON_HPARAMS, name
        assert all(v is None for v in cfg.values()), name


def test_built_from_config_equals_built_from_the_registration() -> None:
    from hydra.utils import instantiate

    for name in ["vggnet_l", "pix2pix_paper", "ezm2d"]:
        from_config = instantiate(_composed_arch(name))
        assert dict(from_config.hparams) == dict(archs.build(name).hparams), name
        assert from_config.preset == name


def test_a_common_hyperparameter_is_overridden_without_a_plus() -> None:
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    with initialize_config_dir(str(CONF_ARCH.parent), version_base=None):
        cfg = compose("train", overrides=["arch=ezm2d", "arch.loss=bce", "+arch.batch_norm=false"])
    model = instantiate(cfg.arch)
    assert model.hparams.loss == "bce" and model.hparams.batch_norm is False
    assert model.hparams.learning_rate == 5e-5  # still the preset's


def test_hydra_instantiates_an_arch_config() -> None:
    from hydra.utils import instantiate

    model = instantiate(_composed_arch("vggnet_s"), learning_rate=2e-3)
    assert model.n_parameters == 1_493_059
    assert model.hparams.learning_rate == 2e-3
    assert type(model.hparams.encoder) is list


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_model_files_name_presets_as_the_original_does(preset: str) -> None:
    """The ``arch`` title written into a .scnm leads back to the same preset."""
    from ais_torch.archs.presets import preset_for_title, title_for_preset

    title = title_for_preset(preset)
    assert title is not None
    assert preset_for_title(title, archs.build(preset).n_parameters) == preset
