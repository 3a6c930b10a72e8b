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
    >>> 1.15 <= vpa_recommendation(w) / 4.0 < 1.15 * 1.05  # bucket's upper edge + 15 %
    True
    """
    return float(_recommend(np.asarray(weights, dtype=float)[None, :])[0])


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

    def _rows(self, codes: np.ndarray, keys: Sequence[Hashable], times_s: np.ndarray) -> np.ndarray:
        """State row of each row's group (``keys[codes]``); groups never seen get an empty
        histogram whose reference time is their first row's."""
        used, first = np.unique(codes, return_index=True)
        key_rows = np.zeros(len(keys), dtype=np.intp)
        new_refs = []
        for code, i in sorted(zip(used.tolist(), first.tolist(), strict=True), key=lambda p: p[1]):
            row = self.index.get(keys[code])
            if row is None:
                row = self.index[keys[code]] = len(self.index)
                new_refs.append(times_s[i])
            key_rows[code] = row
        if new_refs:
            self.weights = np.vstack([self.weights, np.zeros((len(new_refs), EDGES.size))])
            self.reference = np.r_[self.reference, new_refs]
        return key_rows[codes]

    def current(self, codes: np.ndarray, keys: Sequence[Hashable]) -> np.ndarray:
        """Recommendation (GB) for jobs of groups ``keys[codes]`` now (NaN for groups without
        history); computed once per distinct group."""
        rows = np.array([self.index.get(k, -1) for k in keys], dtype=np.intp)
        per_key = np.full(rows.size, np.nan)
        if (rows >= 0).any():
            per_key[rows >= 0] = _recommend(self.weights[rows[rows >= 0]])
        return per_key[codes] if per_key.size else np.full(len(codes), np.nan)

    def replay(self, codes: np.ndarray, keys: Sequence[Hashable], peaks: np.ndarray,
               times_s: np.ndarray, *, commit: bool = False) -> np.ndarray:
        """Recommendation each row saw, for rows in time order of groups ``keys[codes]``.

        A row with a peak adds it after its recommendation (the out-of-memory bump of its
        recommendation when the peak exceeded it); NaN peaks add nothing. Without ``commit`` the
        stored histograms are left as they were. Vectorised across groups: step ``k`` handles
        the ``k``-th row of every group at once, reading only the buckets that hold weight.
        """
        saved = (dict(self.index), self.weights.copy(), self.reference.copy()) if not commit else None
        peaks = np.asarray(peaks, dtype=float)
        times_s = np.asarray(times_s, dtype=float)
        rows = self._rows(np.asarray(codes, dtype=np.intp), keys, times_s)
        order = _stable_order(rows)  # by group, time order within
        starts = np.r_[0, np.flatnonzero(np.diff(rows[order])) + 1]
        rank = np.empty(rows.size, dtype=np.intp)
        rank[order] = np.arange(rows.size) - np.repeat(starts, np.diff(np.r_[starts, rows.size]))
        by_rank = _stable_order(rank)
        bounds = np.r_[0, np.cumsum(np.bincount(rank))] if rows.size else np.zeros(1, np.intp)
        buckets = _bucket(peaks)
        filled = np.flatnonzero(self.weights[np.unique(rows)].any(axis=0))  # of the groups read
        lo, hi = (int(filled[0]), int(filled[-1]) + 1) if filled.size else (EDGES.size, 0)
        out = np.empty(rows.size)
        for k in range(bounds.size - 1):
            at = by_rank[bounds[k]:bounds[k + 1]]
            g = rows[at]
            out[at] = limit = _recommend(self.weights[g, lo:hi], lo)
            bucket = buckets[at]
            oom = peaks[at] > limit  # out-of-memory kill at the limit (False when NaN)
            if oom.any():
                bump = np.maximum(limit[oom] + OOM_MIN_BUMP_GB, limit[oom] * OOM_BUMP_RATIO)
                bucket[oom] = _bucket(bump)
            ok = bucket >= 0
            if ok.any():
                self._add(g[ok], bucket[ok], times_s[at[ok]])
                lo, hi = min(lo, int(bucket[ok].min())), max(hi, int(bucket[ok].max()) + 1)
        if saved is not None:
            self.index, self.weights, self.reference = saved
        return out

    def _add(self, g: np.ndarray, bucket: np.ndarray, time_s: np.ndarray) -> None:
        """Add one sample in ``bucket`` to each histogram ``g`` (distinct), weighted by its time."""
        exponent = (time_s - self.reference[g]) / self.half_life_s
        big = exponent > 60  # renormalise before the weights overflow
        if big.any():
            self.weights[g[big]] *= 2.0 ** -exponent[big, None]
            self.reference[g[big]] = time_s[big]
            exponent[big] = 0.0
        self.weights[g, bucket] += 2.0**exponent


def _stable_order(values: np.ndarray) -> np.ndarray:
    """Stable argsort of non-negative integers (a radix sort when they fit 16 bits)."""
    small = values.size and values.max() < 2**16
    return np.argsort(values.astype(np.uint16) if small else values, kind="stable")


def _bucket(peak_gb: np.ndarray) -> np.ndarray:
    """Bucket of each peak (-1 for NaN)."""
    bucket = np.minimum(np.searchsorted(EDGES, peak_gb), EDGES.size - 1)
    return np.where(np.isnan(peak_gb), -1, bucket)


def _recommend(weights: np.ndarray, first: int = 0) -> np.ndarray:
    """:func:`vpa_recommendation` of each row of a ``(n, buckets)`` weight matrix whose columns
    start at bucket ``first`` (the buckets before it are empty)."""
    total = weights.sum(axis=1)
    bucket = first + (np.cumsum(weights, axis=1) < PERCENTILE * total[:, None]).sum(axis=1)
    rec = np.maximum(EDGES[np.minimum(bucket, EDGES.size - 1)] * (1.0 + MARGIN), MIN_GB)
    return np.where(total > 0, rec, np.nan)
