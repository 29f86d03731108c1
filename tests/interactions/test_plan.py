"""build_postprocess: config checks, competition → interactions order, Hydra interaction sets."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from ais_torch.config import config_dir
from ais_torch.errors import ConfigError
from ais_torch.formats.scnm import ModelMetadata
from ais_torch.interactions.plan import build_postprocess

TITLES = ("Membrane", "Carbon", "Antibody")


def _meta(**flags: dict) -> dict[str, ModelMetadata]:
    return {t: ModelMetadata(title=t, **flags.get(t, {})) for t in TITLES}


def _interactions(name: str) -> dict:
    with initialize_config_dir(str(config_dir() / "segment"), version_base=None):
        cfg = compose(config_name=None, overrides=[f"+interactions={name}"])
    return OmegaConf.to_container(cfg.interactions, resolve=True)


def _rule(**kw) -> dict:
    return {"parent": "Antibody", "partner": "Membrane", "type": "avoid", "radius_nm": 10} | kw


def test_nothing_to_do_gives_none() -> None:
    assert build_postprocess(None, _meta()) is None
    assert build_postprocess(_interactions("none"), _meta()) is None
    # an emitter without absorber (or a model only competing with itself) changes nothing
    assert build_postprocess({"emit": ["Carbon"]}, _meta()) is None
    assert build_postprocess({"emit": ["Carbon"], "absorb": ["Carbon"]}, _meta()) is None
    # flags from the models' metadata count, unless competition is off
    flagged = _meta(Carbon={"emit": True}, Membrane={"absorb": True})
    assert build_postprocess(None, flagged) is not None
    assert build_postprocess({"competition": False}, flagged) is None


def test_unknown_title_names_it_and_lists_the_models() -> None:
    for config in (
        {"rules": [_rule(partner="Membrame")]},
        {"emit": ["Membrame"]},
    ):
        with pytest.raises(ConfigError, match=r"'Membrame'.*available: Membrane, Carbon, Antibody"):
            build_postprocess(config, _meta())
    group = [{"parent_title": "Antibody", "partner_title": "Membrame", "type": 1, "radius": 10.0}]
    with pytest.raises(ConfigError, match=r"'Membrame'.*available"):
        build_postprocess(None, _meta(), group)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"rules": [_rule(threshold=128)]}, "outside [0, 1]"),
        ({"rules": [_rule(radius=10)]}, "unknown key(s) radius"),
        ({"rules": [_rule() | {"radius_nm": None}]}, "radius_nm should be a number"),
        ({"rules": [{"parent": "Antibody"}]}, "'partner' is missing"),
        ({"geometry": "sphere"}, "2d (the original's"),
        ({"competiton": True}, "unknown key(s) competiton"),
        ({"competition": "yes"}, "true or false"),
        ({"rules": "Antibody avoids Membrane"}, "list of rules"),
    ],
)
def test_bad_settings_are_config_errors(config: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_postprocess(config, _meta())


def _scene() -> dict[str, np.ndarray]:
    """One row of 31 voxels (1 nm each): carbon at x=0..2, membrane at x=5 and x=25,
    antibody everywhere."""
    carbon = np.zeros((1, 1, 31), np.uint8)
    carbon[..., :3] = 250
    membrane = np.zeros((1, 1, 31), np.uint8)
    membrane[..., [5, 25]] = 200
    antibody = np.full((1, 1, 31), 100, np.uint8)
    return {"Carbon": carbon, "Membrane": membrane, "Antibody": antibody}


def test_rules_apply_in_the_order_listed() -> None:
    """Antibody follows Membrane within 2 nm; Membrane avoids Carbon within 3 nm. Listed first,
    the avoidance removes the membrane at x=5 before the antibody looks at it."""
    follow = {"parent": "Antibody", "partner": "Membrane", "type": "colocalize", "radius_nm": 2}
    avoid = {"parent": "Membrane", "partner": "Carbon", "type": "avoid", "radius_nm": 3}
    first = build_postprocess({"rules": [avoid, follow]}, _meta())(_scene(), 10.0)
    np.testing.assert_array_equal(np.nonzero(first["Antibody"][0, 0])[0], [23, 24, 25, 26, 27])
    np.testing.assert_array_equal(np.nonzero(first["Membrane"][0, 0])[0], [25])
    second = build_postprocess({"rules": [follow, avoid]}, _meta())(_scene(), 10.0)
    np.testing.assert_array_equal(
        np.nonzero(second["Antibody"][0, 0])[0], [3, 4, 5, 6, 7, 23, 24, 25, 26, 27]
    )


def test_competition_runs_before_interactions() -> None:
    """Carbon (emit) beats Membrane (absorb) at x=25, so the antibody that follows the membrane
    only survives around x=5."""
    scene = _scene()
    scene["Carbon"][..., 25] = 220
    follow = {"parent": "Antibody", "partner": "Membrane", "type": "colocalize", "radius_nm": 1}
    fn = build_postprocess({"emit": ["Carbon"], "absorb": ["Membrane"], "rules": [follow]}, _meta())
    out = fn(scene, 10.0)
    np.testing.assert_array_equal(np.nonzero(out["Antibody"][0, 0])[0], [4, 5, 6])
    assert fn.describe()[0] == "competition: Membrane absorbs where Carbon is higher"


def test_keeps_keys_dtypes_and_copies_read_only_inputs() -> None:
    scene = {k: v.astype(np.float32) / 255 if k == "Antibody" else v for k, v in _scene().items()}
    for v in scene.values():
        v.flags.writeable = False
    before = {k: v.copy() for k, v in scene.items()}
    fn = build_postprocess({"rules": [_rule(radius_nm=2)]}, _meta())
    out = fn(scene | {"Extra": np.ones(3)}, 10.0)
    assert set(out) == {*TITLES, "Extra"}
    assert {k: out[k].dtype for k in TITLES} == {k: before[k].dtype for k in TITLES}
    for k in TITLES:
        np.testing.assert_array_equal(scene[k], before[k])  # inputs untouched
    assert not out["Antibody"][..., 3:8].any() and out["Antibody"][..., 10] > 0


def test_missing_prediction_at_call_time_is_named() -> None:
    fn = build_postprocess({"rules": [_rule()]}, _meta())
    scene = _scene()
    del scene["Membrane"]
    with pytest.raises(ConfigError, match=r"needs model.*Membrane"):
        fn(scene, 10.0)


def test_group_interactions_are_2d_and_run_first() -> None:
    group = [{"parent_title": "Membrane", "partner_title": "Carbon", "type": 1, "radius": 3.0,
              "threshold": 0.5}]  # fmt: skip
    fn = build_postprocess({"rules": [_rule()]}, _meta(), group)
    assert [r.geometry for r in fn.rules] == ["2d", "3d"]
    assert fn.rules[0].parent == "Membrane" and fn.rules[1].parent == "Antibody"


def test_group_reproduces_the_originals_chain(shared_dir: Path) -> None:
    """An original .scnmgroup's two antibody interactions on the reference slice give the
    original's output exactly (float32 in, float32 out)."""
    ref = shared_dir / "reference/interaction"
    parent = np.load(ref / "input_antibody_uint8.npy").astype(np.float32)[None] / 255
    partner = np.load(ref / "input_membrane_uint8.npy").astype(np.float32)[None] / 255
    group = [
        {"parent_title": "Antibody", "partner_title": "Membrane", "type": t, "radius": r,
         "threshold": 0.5}
        for t, r in ((1, 10.0), (0, 30.0))
    ]  # fmt: skip
    fn = build_postprocess({"competition": False}, _meta(), group)
    out = fn({"Antibody": parent, "Membrane": partner, "Carbon": partner * 0}, 10.0)
    want = np.load(ref / "avoid_r10_then_colocalize_r30_float32.npy")
    assert out["Antibody"].dtype == np.float32
    np.testing.assert_array_equal(out["Antibody"][0], want)


def test_antibody_platforms_is_the_papers_figure_3c_set() -> None:
    cfg = _interactions("antibody_platforms")
    fn = build_postprocess(cfg, _meta())
    assert (fn.emit, fn.absorb) == (("Carbon",), ("Membrane",))
    got = [
        (r.parent, r.partner, r.type, r.radius_nm, r.threshold, r.geometry, r.min_size_nm3)
        for r in fn.rules
    ]
    assert got == [
        ("Membrane", "Carbon", "avoid", 10.0, 0.5, "3d", 0.0),
        # + our dust rule: membrane pieces under 1,000 nm³ are not membrane
        ("Antibody", "Membrane", "avoid", 10.0, 0.5, "3d", 1000.0),
        ("Antibody", "Membrane", "colocalize", 30.0, 0.5, "3d", 1000.0),
    ]
    assert build_postprocess(OmegaConf.create(cfg), _meta()).rules == fn.rules  # DictConfig
    flat = build_postprocess(_interactions("antibody_platforms_2d"), _meta())
    assert [r.geometry for r in flat.rules] == ["2d"] * 3


def test_every_named_set_builds_for_the_demo_titles() -> None:
    for path in sorted((config_dir() / "segment" / "interactions").glob("*.yaml")):
        cfg = _interactions(path.stem)
        assert set(cfg) <= {"geometry", "competition", "emit", "absorb", "rules"}, path
        build_postprocess(cfg, _meta())  # raises on any bad title or value


def test_antibody_platforms_keeps_platforms_near_membranes() -> None:
    """3d end to end on a membrane plane: antibody survives only 10 < d <= 30 nm from it, and
    a membrane speck (8 nm³, under the set's 1,000 nm³) neither removes nor keeps anything."""
    membrane = np.zeros((41, 40, 40), np.uint8)
    membrane[0] = 255  # a 1,600 nm³ sheet at 10 Å
    membrane[20:22, 30:32, 30:32] = 255
    preds = {
        "Membrane": membrane,
        "Carbon": np.zeros_like(membrane),
        "Antibody": np.full_like(membrane, 180),
    }
    out = build_postprocess(_interactions("antibody_platforms"), _meta())(preds, 10.0)
    kept = np.nonzero(out["Antibody"][:, 0, 0])[0]
    np.testing.assert_array_equal(kept, np.arange(11, 31))
    np.testing.assert_array_equal(out["Antibody"][:, 30, 30], out["Antibody"][:, 0, 0])
