"""Named sizes of the original's architectures: plain data, no classes.

``PRESETS[name] = (entry-point name, hparams)``: ``build(name)`` builds the entry point's class
with those hyperparameters (``build(name, **overrides)`` changes some). Every preset is mirrored
by ``conf/arch/<name>.yaml`` for Hydra. A preset that shares its name with an entry point must
have empty hparams (it *is* that class's default).

``ORIGINAL_TITLES`` maps the model titles the original Ais stores in ``.scnm`` metadata
(``"arch"``) to presets. Where a title changed meaning between versions, the parameter count in
the same metadata tells them apart: see :func:`preset_for_title`.
"""

from __future__ import annotations

from typing import Any

_VGG_BN_DEEP = {"batch_norm": True, "output_transpose": False}

PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "eman2": ("eman2", {}),
    "inceptionnet": ("inceptionnet", {}),
    # ResNet: the library's 4 blocks (class default) and the paper's 5 blocks.
    "resnet": ("resnet", {}),
    "resnet_paper": ("resnet", {"widths": [32, 64, 128, 256, 512]}),
    # UNet S is the class default (= the paper's "UNet").
    "unet_s": ("unet", {}),
    "unet_m": (
        "unet",
        {
            "encoder": [[32, 32], [64, 64], [128, 128], [256, 256]],
            "bottleneck": [512, 512],
            "decoder": [[256, 256], [128, 128], [64, 64], [32, 32]],
            "up_widths": [256, 128, 64, 32],
            "batch_norm": True,
            "bottleneck_dropout": 0.25,
        },
    ),
    "unet_l": (
        "unet",
        {
            "encoder": [[64, 64], [128, 128], [256, 512], [512, 512]],
            "bottleneck": [1024, 1024],
            "decoder": [[512, 512], [512, 512], [128, 128], [64, 64]],
            "up_widths": [512, 512, 128, 64],
            "batch_norm": True,
            "bottleneck_dropout": 0.5,
        },
    ),
    "vggnet_s": ("vggnet", {"encoder": [[64, 64], [128, 128], [256, 256]]}),
    # VGGNet M is the class default and the default architecture of ais_torch.
    "vggnet_m": ("vggnet", {}),
    "vggnet_l": (
        "vggnet",
        {
            "encoder": [[128, 128], [256, 256], [512, 512], [1024, 1024]],
            "decoder": [1024, 512, 256, 128],
            "encoder_dropout": [0.0, 0.0, 0.0, 0.25],
            **_VGG_BN_DEEP,
        },
    ),
    "vggnet_l_v1": (
        "vggnet",
        {
            "encoder": [[128, 128], [256, 256], [512, 512], [512, 512]],
            "decoder": [512, 512, 256, 128],
            "encoder_dropout": [0.25, 0.25, 0.25, 0.25],
            "decoder_dropout": 0.25,
            **_VGG_BN_DEEP,
        },
    ),
    "vggnet_x": (
        "vggnet",
        {
            "encoder": [[64, 64], [128, 128], [256, 256], [512, 512], [1024, 1024]],
            "decoder": [1024, 512, 256, 128, 64],
            "encoder_dropout": [0.0, 0.0, 0.0, 0.0, 0.25],
            **_VGG_BN_DEEP,
        },
    ),
    # Pix2pix: the 1.2.40 library's generator (class default) and the paper's.
    "pix2pix": ("pix2pix", {}),
    "pix2pix_paper": (
        "pix2pix",
        {
            "down_widths": [64, 128, 256, 512, 512, 512],
            "first_batch_norm": True,
            "output_activation": "tanh",
        },
    ),
    # ezm-2d: "ezm-2d-dice" is the class default; "ezm-2d-bxe" trains with masked BCE.
    "ezm2d": ("ezm2d", {}),
    "ezm2d_bxe": ("ezm2d", {"loss": "bce"}),
}

DEFAULT_PRESET = "vggnet_m"

ORIGINAL_TITLES: dict[str, str] = {
    "Eman2": "eman2",
    "InceptionNet": "inceptionnet",
    "ResNet": "resnet",
    "UNet S": "unet_s",
    "UNet": "unet_s",  # 1.0.36-1.0.40 name of UNet S
    "UNet deep": "unet_s",  # v1.0.0 name of UNet S
    "UNet M": "unet_m",
    "UNet L": "unet_l",
    "VGGNet S": "vggnet_s",
    "VGGNet": "vggnet_s",  # v1.0.0 name of VGGNet S
    "VGGNet M": "vggnet_m",
    "VGGNet double": "vggnet_m",  # v1.0.0 name of VGGNet M
    "VGGNet L": "vggnet_l",
    "VGGNet X": "vggnet_x",
    "Pix2pix": "pix2pix",
    "ezm-2d": "ezm2d",
    "ezm-2d-dice": "ezm2d",
    "ezm-2d-bxe": "ezm2d_bxe",
}

# Titles whose network changed between versions: original n_parameters (C=1) -> preset.
_BY_COUNT: dict[str, dict[int, str]] = {
    "ResNet": {1_215_457: "resnet", 4_887_265: "resnet_paper"},
    "VGGNet L": {38_239_489: "vggnet_l", 17_521_921: "vggnet_l_v1"},
    "Pix2pix": {16_661_121: "pix2pix", 29_249_409: "pix2pix_paper"},
}


def preset_for_title(title: str, n_parameters: int | None = None) -> str:
    """The preset for an original model title, disambiguated by its parameter count if given."""
    from ais_torch.errors import ConfigError

    if title not in ORIGINAL_TITLES:
        known = ", ".join(sorted(ORIGINAL_TITLES))
        raise ConfigError(
            f"no ais_torch architecture for the original title {title!r}; known: {known}"
        )
    if n_parameters is not None and n_parameters in _BY_COUNT.get(title, {}):
        return _BY_COUNT[title][n_parameters]
    return ORIGINAL_TITLES[title]


def title_for_preset(preset: str | None) -> str | None:
    """The original's title for a preset (e.g. ``"vggnet_m"`` → ``"VGGNet M"``), if it has one.

    This is what goes into the ``arch`` field of a model file, so the original Ais shows the
    same name. The first title listed for a preset in ``ORIGINAL_TITLES`` is the current one.
    """
    for title, counts in _BY_COUNT.items():
        if preset in counts.values():
            return title
    return next((t for t, p in ORIGINAL_TITLES.items() if p == preset), None)
