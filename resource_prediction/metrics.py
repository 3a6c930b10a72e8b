"""The business metric: how well an allocation fits the jobs' real peaks.

``business score = penalty x under-allocation % + total over-allocation %``

* under-allocation % is the share of jobs whose allocation is below their peak (the job would die);
* total over-allocation % is the memory allocated beyond the peaks, summed over all jobs, as a share of
  the summed peaks (the memory the cluster wastes).

The penalty is 5 by default and configurable everywhere. This module is the only place the score is
computed; every model, search, report and the simulation call it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_PENALTY = 5.0

#: The seed project's allocation categories: (label, lower ratio, upper ratio) of allocation / peak.
ALLOCATION_CATEGORIES: tuple[tuple[str, float, float], ...] = (
    ("Under-allocated", 0.0, 1.0),
    ("Well-allocated (1x-2x)", 1.0, 2.0),
    ("Severely Over (2x-3x)", 2.0, 3.0),
    ("Extremely Over (3x-4x)", 3.0, 4.0),
    ("Massively Over (4x+)", 4.0, np.inf),
)


def _validate(allocated_gb: Sequence[float], true_gb: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    alloc = np.asarray(allocated_gb, dtype=float).ravel()
    true = np.asarray(true_gb, dtype=float).ravel()
    if alloc.shape != true.shape:
        raise ValueError(
            f"allocated_gb has {alloc.size} values but true_gb has {true.size}: they must match"
        )
    if alloc.size == 0:
        raise ValueError("no jobs to score: allocated_gb and true_gb are empty")
    for name, values in (("allocated_gb", alloc), ("true_gb", true)):
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise ValueError(f"{name} has {bad.size} NaN or infinite values (first at rows {bad[:5].tolist()})")
    bad = np.flatnonzero(true <= 0)
    if bad.size:
        raise ValueError(
            f"true_gb has {bad.size} zero or negative peaks (first at rows {bad[:5].tolist()}); "
            "a peak must be positive"
        )
    bad = np.flatnonzero(alloc < 0)
    if bad.size:
        raise ValueError(f"allocated_gb has {bad.size} negative values (first at rows {bad[:5].tolist()})")
    return alloc, true


def business_score(
    allocated_gb: Sequence[float], true_gb: Sequence[float], penalty: float = DEFAULT_PENALTY
) -> float:
    """Return ``penalty * under % + total over %`` (lower is better).

    Examples
    --------
    >>> business_score([2.0, 1.0], [1.0, 2.0])  # one job of two under, 1 GB over of 3 GB
    283.33...
    """
    alloc, true = _validate(allocated_gb, true_gb)
    under_pct = 100.0 * np.mean(alloc < true)
    over_pct = 100.0 * np.sum(np.maximum(alloc - true, 0.0)) / np.sum(true)
    return float(penalty * under_pct + over_pct)


def allocation_metrics(
    allocated_gb: Sequence[float], true_gb: Sequence[float], penalty: float = DEFAULT_PENALTY
) -> dict[str, float | int]:
    """All the figures of an allocation against the real peaks.

    Returns a dict with ``n_jobs``, ``n_under``, ``under_pct``, ``total_over_pct``, ``business_score``,
    ``mean_gb_wasted`` (mean over-allocation per job, GB), ``total_gb_allocated``, ``total_gb_peak``,
    and, for each allocation category, ``"<label> count"`` and ``"<label> %"``.

    Examples
    --------
    >>> m = allocation_metrics([2.0, 1.0], [1.0, 2.0])
    >>> m["under_pct"], round(m["total_over_pct"], 2), m["n_under"]
    (50.0, 33.33, 1)
    """
    alloc, true = _validate(allocated_gb, true_gb)
    under = alloc < true
    over_gb = np.maximum(alloc - true, 0.0)
    under_pct = 100.0 * float(np.mean(under))
    total_over_pct = 100.0 * float(np.sum(over_gb) / np.sum(true))
    out: dict[str, float | int] = {
        "n_jobs": int(alloc.size),
        "n_under": int(np.sum(under)),
        "under_pct": under_pct,
        "total_over_pct": total_over_pct,
        "business_score": penalty * under_pct + total_over_pct,
        "mean_gb_wasted": float(np.mean(over_gb)),
        "total_gb_allocated": float(np.sum(alloc)),
        "total_gb_peak": float(np.sum(true)),
    }
    for label, count in allocation_category_counts(alloc, true).items():
        out[f"{label} count"] = count
        out[f"{label} %"] = 100.0 * count / alloc.size
    return out


def allocation_categories(allocated_gb: Sequence[float], true_gb: Sequence[float]) -> np.ndarray:
    """The category label of each job (see :data:`ALLOCATION_CATEGORIES`)."""
    alloc, true = _validate(allocated_gb, true_gb)
    ratio = alloc / true
    labels = np.array([label for label, _, _ in ALLOCATION_CATEGORIES])
    # Under is strictly below the peak; an allocation equal to the peak is well allocated.
    uppers = np.array([upper for _, _, upper in ALLOCATION_CATEGORIES[1:]])
    idx = np.where(ratio < 1.0, 0, 1 + np.searchsorted(uppers, ratio, side="right"))
    return labels[np.minimum(idx, len(labels) - 1)]


def allocation_category_counts(allocated_gb: Sequence[float], true_gb: Sequence[float]) -> dict[str, int]:
    """Job counts per allocation category, in the categories' order."""
    cats = allocation_categories(allocated_gb, true_gb)
    return {label: int(np.sum(cats == label)) for label, _, _ in ALLOCATION_CATEGORIES}


def bootstrap_business_score(
    allocated_gb: Sequence[float],
    true_gb: Sequence[float],
    penalty: float = DEFAULT_PENALTY,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the business score (jobs resampled)."""
    alloc, true = _validate(allocated_gb, true_gb)
    rng = np.random.default_rng(seed)
    n = alloc.size
    scores = np.empty(n_boot)
    under = (alloc < true).astype(float)
    over = np.maximum(alloc - true, 0.0)
    for b in range(n_boot):
        idx = rng.integers(0, n, n)
        scores[b] = 100.0 * (penalty * under[idx].mean() + over[idx].sum() / true[idx].sum())
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(scores, [tail, 1.0 - tail])
    return float(low), float(high)


def paired_bootstrap_win_rate(
    allocated_a: Sequence[float],
    allocated_b: Sequence[float],
    true_gb: Sequence[float],
    penalty: float = DEFAULT_PENALTY,
    n_boot: int = 1000,
    seed: int = 0,
    clusters: Sequence | None = None,
) -> float:
    """Share of bootstrap resamples of the jobs in which allocation ``a`` scores below ``b``.

    Both allocations are scored on the same resampled jobs (a paired comparison), so what the
    jobs have in common (a hard stretch, a new task type) cancels out. With ``clusters`` (one
    label per job, e.g. its task type) whole clusters are resampled: jobs of one task type are
    alike, so a model that suits one busy type wins every job-level resample, but not the
    resamples that draw the types again.

    Examples
    --------
    >>> y = np.linspace(1.0, 2.0, 50)
    >>> paired_bootstrap_win_rate(1.1 * y, 1.3 * y, y)
    1.0
    >>> a = np.where(np.arange(50) < 49, 1.05 * y, 0.9 * y)  # tight, but fails the "late" job
    >>> types = np.where(np.arange(50) < 49, "busy", "late")
    >>> paired_bootstrap_win_rate(a, 1.3 * y, y), paired_bootstrap_win_rate(a, 1.3 * y, y, clusters=types)
    (0.931, 0.74)
    """
    a, true = _validate(allocated_a, true_gb)
    b, _ = _validate(allocated_b, true_gb)
    labels = np.arange(true.size) if clusters is None else np.asarray(clusters)
    if labels.shape != true.shape:
        raise ValueError(f"clusters has {labels.size} labels for {true.size} jobs")
    _, codes = np.unique(labels, return_inverse=True)
    k = int(codes.max()) + 1

    def per_cluster(values: np.ndarray) -> np.ndarray:
        return np.bincount(codes, weights=values, minlength=k)

    jobs, peaks = per_cluster(np.ones(true.size)), per_cluster(true)
    fails = [per_cluster((x < true).astype(float)) for x in (a, b)]
    waste = [per_cluster(np.maximum(x - true, 0.0)) for x in (a, b)]
    rng = np.random.default_rng(seed)
    wins = 0
    for start in range(0, n_boot, 100):  # draw counts per cluster, 100 resamples at a time
        draws = rng.integers(0, k, (min(100, n_boot - start), k))
        counts = np.stack([np.bincount(row, minlength=k) for row in draws]).astype(float)
        n, t = counts @ jobs, counts @ peaks
        score_a = penalty * (counts @ fails[0]) / n + (counts @ waste[0]) / t
        score_b = penalty * (counts @ fails[1]) / n + (counts @ waste[1]) / t
        wins += int(np.sum(score_a < score_b))
    return float(wins) / n_boot
