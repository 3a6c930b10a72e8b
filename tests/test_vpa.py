"""The VPA recommender's causal replay against a row-by-row reading of its rules."""

from __future__ import annotations

import numpy as np
import pytest

from resource_prediction.features.vpa import (
    EDGES,
    HALF_LIFE_S,
    MARGIN,
    MIN_GB,
    OOM_BUMP_RATIO,
    OOM_MIN_BUMP_GB,
    PERCENTILE,
    DecayingHistograms,
)


def _reference(keys: list[str], peaks: np.ndarray, times: np.ndarray) -> np.ndarray:
    """One row at a time: each group's samples weigh ``2 ** (t / half-life)``; the recommendation
    is the upper edge of the bucket where the cumulative weight reaches 90 %, + 15 %, at least
    250 MB; a job whose peak exceeds it adds the out-of-memory bump instead of its peak."""
    samples: dict[str, list[tuple[float, float]]] = {}
    out = np.full(len(keys), np.nan)
    for i, key in enumerate(keys):
        history = samples.setdefault(key, [])
        if history:
            weights = np.zeros(EDGES.size)
            for t, value in history:
                bucket = min(int(np.searchsorted(EDGES, value)), EDGES.size - 1)
                weights[bucket] += 2.0 ** ((t - history[0][0]) / HALF_LIFE_S)
            bucket = int(np.argmax(np.cumsum(weights) >= PERCENTILE * weights.sum()))
            out[i] = max(EDGES[bucket] * (1 + MARGIN), MIN_GB)
        if np.isnan(peaks[i]):
            continue
        failed = np.isfinite(out[i]) and peaks[i] > out[i]
        sample = max(out[i] + OOM_MIN_BUMP_GB, out[i] * OOM_BUMP_RATIO) if failed else peaks[i]
        history.append((times[i], sample))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_replay_matches_the_row_by_row_rules(seed):
    rng = np.random.default_rng(seed)
    n = 600
    keys = [f"g{k}" for k in rng.integers(0, 7, n)]
    times = np.sort(rng.uniform(0, 10 * HALF_LIFE_S, n))
    # Growing peaks so that some exceed the recommendation (out-of-memory bumps), a few unknown.
    peaks = np.exp(rng.normal(0, 0.5, n)) * (1 + times / HALF_LIFE_S)
    peaks[rng.random(n) < 0.05] = np.nan
    distinct = sorted(set(keys))
    codes = np.array([distinct.index(k) for k in keys])
    got = DecayingHistograms().replay(codes, distinct, peaks, times)
    expected = _reference(keys, peaks, times)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert np.isnan(got).sum() >= len(distinct)  # a group without peaks has no recommendation
    assert (peaks[np.isfinite(got)] > got[np.isfinite(got)]).any()  # the bumps were exercised


def test_replay_in_two_batches_equals_one_and_commit_keeps_state():
    rng = np.random.default_rng(3)
    n = 400
    codes = rng.integers(0, 4, n)
    keys = ["a", "b", "c", "d"]
    times = np.sort(rng.uniform(0, 5 * HALF_LIFE_S, n))
    peaks = rng.lognormal(0, 0.3, n)
    whole = DecayingHistograms().replay(codes, keys, peaks, times)
    split = DecayingHistograms()
    first = split.replay(codes[:250], keys, peaks[:250], times[:250], commit=True)
    before = split.weights.copy()
    split.replay(codes[250:], keys, peaks[250:], times[250:])  # not committed: no change
    np.testing.assert_array_equal(split.weights, before)
    second = split.replay(codes[250:], keys, peaks[250:], times[250:], commit=True)
    np.testing.assert_allclose(np.r_[first, second], whole, rtol=1e-12)
    np.testing.assert_allclose(split.current(np.arange(4), keys),
                               DecayingHistograms().replay(
                                   np.r_[codes, np.arange(4)], keys, np.r_[peaks, np.full(4, np.nan)],
                                   np.r_[times, np.full(4, times[-1])])[-4:], rtol=1e-12)
