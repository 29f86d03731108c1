"""Competition: absorbers lose where another emitter is strictly higher."""

from __future__ import annotations

import numpy as np
import pytest

from ais_torch.errors import AisInputError
from ais_torch.interactions.competition import apply_competition, competing_pairs


def _preds(**values: list[int]) -> dict[str, np.ndarray]:
    return {k: np.array([[v]], np.uint8) for k, v in values.items()}


def test_absorber_zeroed_only_where_an_emitter_is_strictly_higher() -> None:
    p = _preds(Membrane=[100, 100, 100], Carbon=[101, 100, 99])
    apply_competition(p, emit=["Carbon"], absorb=["Membrane"])
    np.testing.assert_array_equal(p["Membrane"][0, 0], [0, 100, 100])  # tie keeps
    np.testing.assert_array_equal(p["Carbon"][0, 0], [101, 100, 99])  # emit only: untouched


def test_a_model_never_competes_with_itself() -> None:
    p = _preds(Membrane=[10, 200])
    apply_competition(p, emit=["Membrane"], absorb=["Membrane"])
    np.testing.assert_array_equal(p["Membrane"][0, 0], [10, 200])
    assert competing_pairs(["Membrane"], ["Membrane"]) == {}


def test_emit_and_absorb_models_keep_only_where_they_are_the_maximum() -> None:
    p = _preds(A=[5, 9, 7, 1], B=[9, 5, 7, 1], C=[1, 1, 8, 0])
    apply_competition(p, emit=["A", "B", "C"], absorb=["A", "B", "C"])
    np.testing.assert_array_equal(p["A"][0, 0], [0, 9, 0, 1])
    np.testing.assert_array_equal(p["B"][0, 0], [9, 0, 0, 1])
    np.testing.assert_array_equal(p["C"][0, 0], [0, 0, 8, 0])


def test_absorber_that_does_not_emit_does_not_suppress_others() -> None:
    p = _preds(A=[200], B=[100])
    apply_competition(p, emit=["B"], absorb=["A", "B"])
    assert p["A"][0, 0, 0] == 200 and p["B"][0, 0, 0] == 100


def test_decisions_use_the_values_before_competition() -> None:
    """B (emit+absorb) loses to C, yet still beats the absorber A: A is zeroed too."""
    p = {
        "A": np.array([0.50], np.float32),
        "B": np.array([0.60], np.float32),
        "C": np.array([0.70], np.float32),
    }
    apply_competition(p, emit=["B", "C"], absorb=["A", "B"])
    assert p["A"][0] == 0 and p["B"][0] == 0 and p["C"][0] == np.float32(0.7)


def test_mixed_dtypes_compare_on_the_probability_scale() -> None:
    p = {"A": np.array([[[128, 128]]], np.uint8), "B": np.array([[[0.6, 0.4]]], np.float32)}
    apply_competition(p, emit=["B"], absorb=["A"])
    np.testing.assert_array_equal(p["A"], [[[0, 128]]])
    assert p["A"].dtype == np.uint8


def test_slabs_give_the_same_answer() -> None:
    rng = np.random.default_rng(1)
    base = {k: rng.integers(0, 256, (7, 5, 6), dtype=np.uint8) for k in "ABC"}
    whole = {k: v.copy() for k, v in base.items()}
    slabs = {k: v.copy() for k, v in base.items()}
    apply_competition(whole, emit="BC", absorb="AB")
    apply_competition(slabs, emit="BC", absorb="AB", slab_voxels=30)
    for k in "ABC":
        np.testing.assert_array_equal(whole[k], slabs[k])
    assert (whole["A"] == 0).sum() > (base["A"] == 0).sum()


def test_shape_mismatch_is_an_input_error() -> None:
    p = {"A": np.zeros((2, 3, 3), np.uint8), "B": np.zeros((2, 3, 4), np.uint8)}
    with pytest.raises(AisInputError, match="one shape"):
        apply_competition(p, emit=["B"], absorb=["A"])
