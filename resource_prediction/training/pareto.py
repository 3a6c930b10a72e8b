"""The quantile ensemble's trade-off between failed jobs and wasted memory, and its three variants.

Around the best quantile-ensemble parameters, a small grid of ``alpha`` (the quantile level) and
``safety`` (the multiplier of the prediction) is scored on a time-validation slice of the training
part (the latest ``val_fraction`` of it; never the holdout). A model is fitted once per ``alpha``;
``safety`` only multiplies the prediction, so it is varied without refitting. The non-dominated points
of (under-allocation %, total over-allocation %) form the Pareto frontier, from which three variants
are chosen and refitted on the whole training part:

* ``qe_balanced``: the lowest business score;
* ``qe_tiny_under_alloc`` (failure prevention first): the lowest under-allocation % on the frontier
  whose total over-allocation stays within ``over_cap_factor`` times the balanced one's;
* ``qe_small_waste`` (efficiency first): the lowest total over-allocation % on the frontier whose
  under-allocation stays within ``under_cap_factor`` times the balanced one's (at least
  ``under_cap_floor`` points above it).

By construction ``tiny_under.under <= balanced.under <= small_waste.under`` and the reverse for the
over-allocation, on the validation slice.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from resource_prediction.data import time_split
from resource_prediction.metrics import DEFAULT_PENALTY, allocation_metrics
from resource_prediction.preprocessing import ModelPreprocessor
from resource_prediction.registry import split_params

__all__ = [
    "VARIANTS",
    "alpha_grid",
    "choose_variants",
    "pareto_mask",
    "safety_grid",
    "sweep_quantile_ensemble",
]

log = logging.getLogger(__name__)

#: Exported variants, in the order of growing under-allocation.
VARIANTS = ("qe_tiny_under_alloc", "qe_balanced", "qe_small_waste")
DEFAULT_SAFETY_FACTORS = (0.8, 0.9, 1.0, 1.1, 1.2, 1.35, 1.5)


def pareto_mask(under_pct, over_pct) -> np.ndarray:
    """Which points no other point dominates (both objectives minimised; duplicates all kept).

    Examples
    --------
    >>> pareto_mask([1.0, 2.0, 2.0, 3.0], [5.0, 3.0, 4.0, 3.0]).tolist()
    [True, True, False, False]
    """
    u = np.asarray(under_pct, dtype=float)
    o = np.asarray(over_pct, dtype=float)
    le = (u[None, :] <= u[:, None]) & (o[None, :] <= o[:, None])
    lt = (u[None, :] < u[:, None]) | (o[None, :] < o[:, None])
    return ~np.any(le & lt, axis=1)


def alpha_grid(best_alpha: float, n: int = 5, step: float = 0.4, low: float = 0.5, high: float = 0.999) -> np.ndarray:
    """``n`` quantile levels around ``best_alpha``, evenly spaced in log-odds (``step`` apart).

    Examples
    --------
    >>> alpha_grid(0.95, n=3).round(3).tolist()
    [0.927, 0.95, 0.966]
    """
    centre = np.log(best_alpha / (1.0 - best_alpha))
    offsets = (np.arange(n) - (n - 1) / 2.0) * step
    grid = 1.0 / (1.0 + np.exp(-(centre + offsets)))
    return np.unique(np.clip(grid, low, high).round(4))


def safety_grid(best_safety: float, factors=DEFAULT_SAFETY_FACTORS) -> np.ndarray:
    """Safety multipliers: ``best_safety`` times each factor."""
    return np.unique((best_safety * np.asarray(factors, dtype=float)).round(4))


def choose_variants(
    points: pd.DataFrame,
    over_cap_factor: float = 2.0,
    under_cap_factor: float = 2.0,
    under_cap_floor: float = 1.0,
) -> dict[str, object]:
    """Index labels of the three variants among ``points`` (columns ``under_pct``,
    ``total_over_pct``, ``business_score``); see the module docstring for the rules."""
    under = points["under_pct"].to_numpy(dtype=float)
    over = points["total_over_pct"].to_numpy(dtype=float)
    score = points["business_score"].to_numpy(dtype=float)
    front = pareto_mask(under, over)
    # Lowest score, ties to the lower under %, on the frontier (the minimum always is on it).
    bal = np.lexsort((under, score + np.where(front, 0.0, np.inf)))[0]
    over_cap = over_cap_factor * over[bal]
    under_cap = max(under_cap_factor * under[bal], under[bal] + under_cap_floor)
    ok_tiny = front & (over <= over_cap)
    tiny = np.lexsort((over, np.where(ok_tiny, under, np.inf)))[0]
    ok_small = front & (under <= under_cap)
    small = np.lexsort((under, np.where(ok_small, over, np.inf)))[0]
    labels = points.index
    return {"qe_tiny_under_alloc": labels[tiny], "qe_balanced": labels[bal], "qe_small_waste": labels[small]}


def _validation_features(family, train_raw: pd.DataFrame, pre_params: dict, val_fraction: float):
    """Features and peaks of the training rows before the validation slice and of the slice
    (replayed causally: validation jobs see earlier validation peaks)."""
    inner, val = time_split(train_raw, val_fraction)
    pre = ModelPreprocessor(**{"encoding": family.preferred_encoding, **pre_params})
    X_inner = pre.fit_transform(inner)
    X_val = pre.transform(val)
    return (X_inner, inner["max_rss_gb"].to_numpy(dtype=float),
            X_val, val["max_rss_gb"].to_numpy(dtype=float))


def sweep_quantile_ensemble(
    family,
    train_raw: pd.DataFrame,
    params: dict | None = None,
    penalty: float = DEFAULT_PENALTY,
    seed: int = 0,
    alphas=None,
    safeties=None,
    val_fraction: float = 0.15,
    n_alphas: int = 5,
) -> pd.DataFrame:
    """Score the (alpha, safety) grid on the latest ``val_fraction`` of ``train_raw``.

    Parameters
    ----------
    family : ModelFamily
        A family whose model has ``alpha`` and ``safety`` parameters (the quantile ensemble).
    train_raw : DataFrame
        Raw telemetry of the training part (with the target).
    params : dict, optional
        The family's best parameters (``pre__*`` keys included); the grids centre on their ``alpha``
        and ``safety`` (the model's defaults when absent).
    alphas, safeties : array-like, optional
        The grids (default :func:`alpha_grid` with ``n_alphas`` levels and :func:`safety_grid`
        around ``params``).
    val_fraction : float
        The latest share of ``train_raw`` that scores the grid (the rest fits the models).

    Returns
    -------
    DataFrame
        One row per (alpha, safety): ``alpha``, ``safety``, ``under_pct``, ``total_over_pct``,
        ``business_score``, ``mean_gb_wasted``, ``on_frontier``.
    """
    model_params, pre_params = split_params(params)
    defaults = family.estimator.get_params(deep=False)
    missing = {"alpha", "safety"} - set(defaults)
    if missing:
        raise ValueError(f"family {family.name!r} has no {sorted(missing)} parameter: not a quantile ensemble")
    best_alpha = float(model_params.get("alpha", defaults["alpha"]))
    best_safety = float(model_params.get("safety", defaults["safety"]))
    alphas = alpha_grid(best_alpha, n=n_alphas) if alphas is None else np.asarray(alphas, dtype=float)
    safeties = safety_grid(best_safety) if safeties is None else np.asarray(safeties, dtype=float)

    X_inner, y_inner, X_val, y_val = _validation_features(family, train_raw, pre_params, val_fraction)
    rows = []
    for alpha in alphas:
        start = time.perf_counter()
        model = family.make_estimator(
            {**model_params, "alpha": float(alpha), "safety": 1.0}, penalty=penalty, random_state=seed
        ).fit(X_inner, y_inner)
        for safety in safeties:
            model.set_params(safety=float(safety))
            m = allocation_metrics(model.predict(X_val), y_val, penalty)
            rows.append({
                "alpha": float(alpha), "safety": float(safety), "under_pct": m["under_pct"],
                "total_over_pct": m["total_over_pct"], "business_score": m["business_score"],
                "mean_gb_wasted": m["mean_gb_wasted"],
            })
        log.debug("pareto sweep: alpha %.4f fitted and scored in %.1f s", alpha, time.perf_counter() - start)
    points = pd.DataFrame(rows)
    points["on_frontier"] = pareto_mask(points["under_pct"], points["total_over_pct"])
    return points
