"""Kubernetes' Vertical Pod Autoscaler recommender, per job group, replayed causally.

The VPA recommender (``vertical-pod-autoscaler/pkg/recommender``) keeps, per container, a
histogram of memory peaks with exponentially growing buckets (each 5 % wider than the last,
the first 10 MB), whose samples decay with a half-life of 24 hours; it recommends the 90th
percentile of that histogram plus a 15 % safety margin, at least 250 MB. After an out-of-memory
kill it records a sample of the larger of the limit + 100 MB and the limit x 1.2 instead of the
(unknown) peak.

Here a job group plays the container: :class:`DecayingHistograms` replays jobs in time order,
each seeing the recommendation of its group's history before it ran, then adding its own peak
(or, when its peak exceeded that recommendation, the out-of-memory bump). Decay multiplies every
weight of a histogram by the same factor as time passes, so a percentile depends only on the
weights given at insertion, ``2 ** (t / half_life)``: stored as logarithms relative to a per-group
reference time and renormalised when they grow large.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

__all__ = ["DecayingHistograms", "vpa_recommendation"]

GB = 1024.0**3
#: Bucket layout: first bucket 1e7 bytes, each 5 % wider than the last, up to 1 TB.
FIRST_BUCKET_GB = 1e7 / GB
GROWTH = 1.05
MAX_GB = 1e12 / GB
HALF_LIFE_S = 24 * 3600.0
PERCENTILE = 0.9
MARGIN = 0.15
MIN_GB = 250 * 1024.0**2 / GB
OOM_BUMP_RATIO = 1.2
OOM_MIN_BUMP_GB = 100 * 1024.0**2 / GB


def _bucket_edges() -> np.ndarray:
    """Upper edges (GB) of the exponential buckets."""
    n = int(np.ceil(np.log(MAX_GB / FIRST_BUCKET_GB * (GROWTH - 1) + 1) / np.log(GROWTH)))
    sizes = FIRST_BUCKET_GB * GROWTH ** np.arange(n)
    return np.cumsum(sizes)


EDGES = _bucket_edges()
#: Bucket starts: a percentile is read as the start of its bucket, as VPA does.
_STARTS = np.r_[0.0, EDGES[:-1]]


def vpa_recommendation(weights: np.ndarray) -> float:
    """The recommendation (GB) of one histogram of bucket ``weights``: NaN when empty.

    Examples
    --------
    >>> w = np.zeros(EDGES.size); w[np.searchsorted(EDGES, 4.0)] = 1.0
    >>> round(vpa_recommendation(w) / 4.0, 2)
    1.15
    """
    total = weights.sum()
    if total <= 0:
        return np.nan
    bucket = int(np.searchsorted(np.cumsum(weights), PERCENTILE * total))
    upper = EDGES[min(bucket, EDGES.size - 1)]
    return max(upper * (1.0 + MARGIN), MIN_GB)


class DecayingHistograms:
    """One decaying histogram of peaks per group (VPA's memory model), with causal replay.

    Attributes
    ----------
    index : dict
        Group key to row of ``weights``.
    weights : ndarray of shape (n_groups, n_buckets)
        Bucket weights relative to ``reference``.
    reference : ndarray of shape (n_groups,)
        Each group's reference time (seconds).
    """

    def __init__(self, half_life_s: float = HALF_LIFE_S):
        self.half_life_s = float(half_life_s)
        self.index: dict[Hashable, int] = {}
        self.weights = np.zeros((0, EDGES.size))
        self.reference = np.zeros(0)

    def _row(self, key: Hashable, time_s: float) -> int:
        row = self.index.get(key)
        if row is None:
            row = self.index[key] = len(self.index)
            self.weights = np.vstack([self.weights, np.zeros(EDGES.size)])
            self.reference = np.r_[self.reference, time_s]
        return row

    def _add(self, row: int, peak_gb: float, time_s: float) -> None:
        exponent = (time_s - self.reference[row]) / self.half_life_s
        if exponent > 60:  # renormalise before the weights overflow
            self.weights[row] *= 2.0 ** -exponent
            self.reference[row] = time_s
            exponent = 0.0
        bucket = min(int(np.searchsorted(EDGES, peak_gb)), EDGES.size - 1)
        self.weights[row, bucket] += 2.0**exponent

    def current(self, keys: Sequence[Hashable]) -> np.ndarray:
        """Recommendation (GB) for a job of each group now (NaN for groups without history)."""
        return np.array([
            vpa_recommendation(self.weights[self.index[k]]) if k in self.index else np.nan
            for k in keys
        ])

    def replay(self, keys: Sequence[Hashable], peaks: np.ndarray, times_s: np.ndarray,
               *, commit: bool = False) -> np.ndarray:
        """Recommendation each row saw, for rows in time order (``keys`` per row).

        A row with a peak adds it after its recommendation (the out-of-memory bump of its
        recommendation when the peak exceeded it); NaN peaks add nothing. Without ``commit`` the
        stored histograms are left as they were.
        """
        saved = (dict(self.index), self.weights.copy(), self.reference.copy()) if not commit else None
        out = np.empty(len(keys))
        for i, (key, peak, t) in enumerate(zip(keys, peaks, times_s, strict=True)):
            row = self.index.get(key)
            out[i] = np.nan if row is None else vpa_recommendation(self.weights[row])
            if not np.isfinite(peak):
                continue
            row = self._row(key, t) if row is None else row
            limit = out[i]
            if np.isfinite(limit) and peak > limit:  # out-of-memory kill at the limit
                peak = max(limit + OOM_MIN_BUMP_GB, limit * OOM_BUMP_RATIO)
            self._add(row, float(peak), float(t))
        if saved is not None:
            self.index, self.weights, self.reference = saved
        return out
