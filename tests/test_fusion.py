"""Rank fusion (pure): tiny cases computed by hand, as ranx's tests do."""

from __future__ import annotations

import pytest

from langchain_matryoshka.errors import ConfigurationError
from langchain_matryoshka.fusion import check_weights, min_max, rrf, weighted


def test_rrf_hand_computed() -> None:
    # dense: a b c ; text: c a d  (k = 60)
    # a: 1/61 + 1/62 ; b: 1/62 ; c: 1/63 + 1/61 ; d: 1/63
    fused = dict(rrf([["a", "b", "c"], ["c", "a", "d"]], k=60))
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["b"] == pytest.approx(1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert fused["d"] == pytest.approx(1 / 63)
    assert [key for key, _ in rrf([["a", "b", "c"], ["c", "a", "d"]])] == ["a", "c", "b", "d"]


def test_rrf_constant_changes_the_order() -> None:
    # x: rank 1 in one list only; y: rank 3 in both.  k=0: 1 > 2/3; k=60: 1/61 < 2/63
    lists = [["x", "p", "y"], ["q", "r", "y"]]
    assert rrf(lists, k=0)[0][0] == "x"
    assert rrf(lists, k=60)[0][0] == "y"
    assert dict(rrf(lists, k=0))["y"] == pytest.approx(2 / 3)


def test_rrf_ties_follow_rank_by_rank_order() -> None:
    # a and c both rank 1 once: equal scores; a is read first (list 0, rank 1)
    assert rrf([["a", "b"], ["c", "d"]]) == [
        ("a", pytest.approx(1 / 61)),
        ("c", pytest.approx(1 / 61)),
        ("b", pytest.approx(1 / 62)),
        ("d", pytest.approx(1 / 62)),
    ]


def test_rrf_one_list_and_empty_lists() -> None:
    assert [key for key, _ in rrf([["a", "b"], []])] == ["a", "b"]
    assert rrf([[], []]) == []
    # a key repeated within a list counts once, at its first rank
    assert dict(rrf([["a", "a", "b"]]))["a"] == pytest.approx(1 / 61)


def test_min_max() -> None:
    assert min_max([3.0, 2.0, 1.0]) == [1.0, 0.5, 0.0]
    assert min_max([5.0, 5.0]) == [1.0, 1.0]
    assert min_max([]) == []


def test_weighted_hand_computed() -> None:
    # dense cosines: a .9, b .7, c .5 -> 1, .5, 0 ; bm25: c 12, d 6, a 3 -> 1, 1/3, 0
    # weights (.75, .25): a .75 ; b .375 ; c .25 ; d .25/3
    dense = [("a", 0.9), ("b", 0.7), ("c", 0.5)]
    text = [("c", 12.0), ("d", 6.0), ("a", 3.0)]
    fused = weighted([dense, text], (0.75, 0.25))
    assert [key for key, _ in fused] == ["a", "b", "c", "d"]
    assert dict(fused) == pytest.approx({"a": 0.75, "b": 0.375, "c": 0.25, "d": 0.25 / 3})
    # weights are scaled to sum to 1: (3, 1) is (.75, .25)
    assert weighted([dense, text], (3, 1)) == fused
    # all weight on the text side: its order, dense-only documents last at 0
    assert [key for key, _ in weighted([dense, text], (0, 1))][:2] == ["c", "d"]


@pytest.mark.parametrize(
    "weights", [(1.0,), (0.5, -0.5), (0, 0), "ab", (0.5, float("nan")), (True, 1), None]
)
def test_bad_weights_are_refused(weights) -> None:
    with pytest.raises(ConfigurationError, match="weights="):
        check_weights(weights, 2)


@pytest.mark.parametrize("k", [-1, 1.5, True, "60"])
def test_bad_rrf_constant_is_refused(k) -> None:
    with pytest.raises(ConfigurationError, match="rrf_k="):
        rrf([["a"]], k=k)
