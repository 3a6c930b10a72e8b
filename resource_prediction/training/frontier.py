"""The cost-aware model's frontier: failed jobs against wasted memory as the penalty varies.

A model that prices a failure at ``penalty x mean peak`` re-prices its allocations without
refitting (:meth:`~resource_prediction.models.CostAwareRegressor.unit_cost` is read at prediction
time), so one fit on the training part before the validation window, replayed over the window
at each penalty of a grid, traces its (under-allocation %, total over-allocation %) frontier.

From it the evaluation exports a **safe variant**: the penalty with the least total
over-allocation whose validation under-allocation is at or below the configured request's (what
runs today) **with confidence**: the upper end of its one-sided 95 % (Wilson) interval, not the
share itself, must stay at or below. Chosen on the share itself, a penalty at the edge fails more
jobs than the request about half the time on later jobs (measured in ``make bench``: on five of
eight data sets before, one of six after; where the request fails no validation job no penalty
qualifies).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm

from resource_prediction.metrics import allocation_metrics

__all__ = [
    "SAFE_CONFIDENCE", "SAFE_VARIANT", "choose_safe_penalty", "penalty_grid", "reprices",
    "sweep_penalties", "wilson_upper",
]

#: Name of the exported variant (``trained_models/app/cost_aware/<name>.pkl``).
SAFE_VARIANT = "cost_aware_safe"
#: Confidence that the safe variant's under-allocation is at most the configured request's.
SAFE_CONFIDENCE = 0.95


def penalty_grid(low: float = 0.5, high: float = 500.0, n: int = 19) -> np.ndarray:
    """Penalties evenly spaced in log between ``low`` and ``high``.

    Examples
    --------
    >>> penalty_grid(1.0, 100.0, 3).tolist()
    [1.0, 10.0, 100.0]
    """
    return np.unique(np.geomspace(low, high, n).round(4))


def reprices(estimator) -> bool:
    """Whether a fitted estimator prices failures at prediction time (``penalty`` + ``unit_cost``)."""
    return "penalty" in estimator.get_params(deep=False) and callable(getattr(estimator, "unit_cost", None))


def sweep_penalties(model, X: pd.DataFrame, y: np.ndarray, penalties) -> pd.DataFrame:
    """Metrics of the fitted ``model`` (a predictor that :func:`reprices`) at each penalty.

    Every row's business score is at the default penalty, so the points compare on one scale.
    The model's penalty is restored afterwards.
    """
    if not reprices(model):
        raise ValueError(f"{type(model).__name__} does not re-price with its penalty")
    original = model.penalty
    rows = []
    try:
        for penalty in np.asarray(penalties, dtype=float):
            model.set_params(penalty=float(penalty))
            m = allocation_metrics(model.predict(X), y)
            rows.append({"penalty": float(penalty), "under_pct": m["under_pct"],
                         "total_over_pct": m["total_over_pct"], "business_score": m["business_score"],
                         "n_jobs": int(m["n_jobs"])})
    finally:
        model.set_params(penalty=original)
    return pd.DataFrame(rows)


def wilson_upper(share: np.ndarray, n: np.ndarray, confidence: float = SAFE_CONFIDENCE) -> np.ndarray:
    """Upper end of the one-sided Wilson score interval of a binomial ``share`` of ``n`` trials.

    Examples
    --------
    >>> [round(float(u), 4) for u in wilson_upper(np.array([0.0, 0.02]), np.array([100, 5000]))]
    [0.0263, 0.0235]
    """
    z = norm.ppf(confidence)
    share, n = np.asarray(share, dtype=float), np.asarray(n, dtype=float)
    centre = share + z**2 / (2 * n)
    spread = z * np.sqrt(share * (1 - share) / n + z**2 / (4 * n**2))
    return (centre + spread) / (1 + z**2 / n)


def choose_safe_penalty(points: pd.DataFrame, max_under_pct: float,
                        confidence: float | None = SAFE_CONFIDENCE) -> float | None:
    """The penalty with the least total over-allocation among those whose under-allocation is at
    most ``max_under_pct`` with ``confidence`` (the :func:`wilson_upper` bound of the share of
    the ``n_jobs`` jobs; None compares the share itself); None when no penalty gets there.

    Examples
    --------
    >>> pts = pd.DataFrame({"penalty": [1.0, 5.0, 50.0], "under_pct": [6.0, 3.0, 1.0],
    ...                     "total_over_pct": [20.0, 40.0, 90.0], "n_jobs": 1000})
    >>> choose_safe_penalty(pts, 3.0, confidence=None)
    5.0
    >>> choose_safe_penalty(pts, 3.0)  # 3 % of 1,000 jobs could well be 4 %
    50.0
    """
    under = points["under_pct"].to_numpy(dtype=float)
    if confidence is not None:
        under = 100 * wilson_upper(under / 100, points["n_jobs"].to_numpy(dtype=float), confidence)
    ok = points[under <= max_under_pct]
    if ok.empty:
        return None
    return float(ok.sort_values(["total_over_pct", "penalty"]).iloc[0]["penalty"])
