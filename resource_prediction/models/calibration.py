"""Helpers of forward calibration: support points of a predictive distribution, weighted residual
quantiles, the number of boosting rounds whose forward predictions erred least, and business
scores over consecutive blocks of time (which choose between calibrated candidates)."""

from __future__ import annotations

import numpy as np

from resource_prediction.metrics import business_score

__all__ = ["SCORE_BLOCKS", "block_median_score", "block_scores", "least_squares_row", "tail_levels",
           "times_before", "times_seen", "weighted_quantiles"]

#: Candidates are scored by their median business score over this many blocks of time.
SCORE_BLOCKS = 4


def tail_levels(n_support: int, tail_power: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Probability levels and weights of ``n_support`` points, denser towards 1.

    The unit interval is cut at ``1 - (1 - u) ** tail_power`` for ``u`` evenly spaced; each
    point sits at the middle of its cell and weighs the cell's width.

    Examples
    --------
    >>> levels, weights = tail_levels(4)
    >>> bool(np.all(np.diff(levels) > 0)), float(weights.sum())
    (True, 1.0)
    """
    cuts = 1.0 - (1.0 - np.linspace(0.0, 1.0, n_support + 1)) ** tail_power
    return 0.5 * (cuts[:-1] + cuts[1:]), np.diff(cuts)


def weighted_quantiles(values: np.ndarray, levels: np.ndarray, weights: np.ndarray | None = None):
    """Quantiles of ``values`` at ``levels`` with sample ``weights`` (uniform by default).

    Interpolates the weighted empirical CDF at the mid-points of each value's weight.

    Examples
    --------
    >>> weighted_quantiles(np.array([1.0, 2.0, 3.0]), np.array([0.5])).tolist()
    [2.0]
    """
    order = np.argsort(values, kind="stable")
    v = np.asarray(values, dtype=float)[order]
    w = np.ones(v.size) if weights is None else np.asarray(weights, dtype=float)[order]
    cdf = (np.cumsum(w) - 0.5 * w) / w.sum()
    return np.interp(levels, cdf, v)


def least_squares_row(staged: np.ndarray, target: np.ndarray) -> tuple[int, np.ndarray]:
    """The row of ``staged`` (one prediction per column) nearest ``target`` in mean squared
    error, and every row's error."""
    errors = np.mean((target[None, :] - staged) ** 2, axis=1)
    return int(np.argmin(errors)), errors


def times_seen(known: np.ndarray, asked: np.ndarray) -> np.ndarray:
    """For each ``asked`` category code, how many ``known`` rows have it (a missing code: 0)."""
    known = np.nan_to_num(known, nan=-1.0).astype(np.intp) + 1
    asked = np.nan_to_num(asked, nan=-1.0).astype(np.intp) + 1
    counts = np.bincount(known, minlength=int(max(known.max(initial=0), asked.max(initial=0))) + 1)
    return np.where(asked > 0, counts[asked], 0)


def times_before(codes: np.ndarray) -> np.ndarray:
    """For each row, how many earlier rows have its category code (a missing code: 0).

    Examples
    --------
    >>> times_before(np.array([2.0, 1.0, 2.0, np.nan, 2.0])).tolist()
    [0, 0, 1, 0, 2]
    """
    known = ~np.isnan(codes)
    values = codes[known]
    order = np.argsort(values, kind="stable")  # time order within each code
    ordered = values[order]
    out = np.zeros(codes.size, dtype=np.intp)
    ranks = np.empty(values.size, dtype=np.intp)
    ranks[order] = np.arange(values.size) - np.searchsorted(ordered, ordered)  # minus its code's first
    out[known] = ranks
    return out


def block_median_score(alloc: np.ndarray, y: np.ndarray, order: np.ndarray, penalty: float,
                       n_blocks: int = SCORE_BLOCKS) -> float:
    """Median business score of ``alloc`` over ``n_blocks`` consecutive blocks of time.

    ``order`` gives each row's position in time. A candidate must be better through most of the
    period, and one stretch does not decide: on a small trace the pooled score chose the trees,
    which beat the flat location by a wide margin on one block, were level on one and lost two;
    on the next 224 tasks they failed 58 % of them, the flat location almost none.

    Examples
    --------
    >>> y = np.ones(8)
    >>> steady = np.full(8, 1.2)                   # 20 % waste in every block
    >>> mostly_exact = np.r_[np.ones(6), 0.5, 1.0]  # exact, but one block has a failure
    >>> round(business_score(mostly_exact, y, penalty=5.0), 1)  # pooled: worse than steady
    62.5
    >>> [round(block_median_score(a, y, np.arange(8), 5.0), 1) for a in (steady, mostly_exact)]
    [20.0, 0.0]
    """
    return float(np.median(block_scores(alloc, y, order, penalty, n_blocks)))


def block_scores(alloc: np.ndarray, y: np.ndarray, order: np.ndarray, penalty: float,
                 n_blocks: int = SCORE_BLOCKS) -> np.ndarray:
    """Business score of ``alloc`` on each of ``n_blocks`` consecutive blocks of time (``order``)."""
    time_order = np.argsort(order, kind="stable")
    blocks = [b for b in np.array_split(time_order, min(int(n_blocks), time_order.size)) if b.size]
    return np.array([business_score(alloc[b], y[b], penalty=penalty) for b in blocks])
