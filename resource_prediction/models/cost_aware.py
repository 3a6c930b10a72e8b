"""Cost-aware allocation: predict each job's peak distribution, allocate its cost optimum.

The business score splits into one expected cost per job, ``unit_cost * P(peak > a) +
E[(a - peak)+]`` with ``unit_cost = penalty x mean peak`` (see :mod:`resource_prediction.
allocation`): the best quantile differs from job to job. This model

1. fits the location of ``log(peak)`` with LightGBM (squared error);
2. fits the scale: a second LightGBM on the absolute out-of-fold residuals (cross-fitting, so
   the residuals are honest);
3. keeps the standardised out-of-fold residuals ``(log peak - location) / scale`` as empirical
   quantiles (dense in the upper tail, where the optimum lies);
4. per job, turns ``exp(location + calibration x scale x residual quantiles)`` into weighted sample
   points and allocates the point minimising the expected cost
   (:func:`~resource_prediction.allocation.optimal_allocation_from_samples`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from lightgbm import LGBMRegressor
from sklearn.model_selection import KFold
from sklearn.utils.validation import check_is_fitted

from resource_prediction.allocation import optimal_allocation_from_samples, unit_failure_cost
from resource_prediction.metrics import DEFAULT_PENALTY
from resource_prediction.models.adapters import fit_with_categoricals, predict_fast
from resource_prediction.models.base import BasePredictor, suggest_preprocessor_params

__all__ = ["CostAwareRegressor", "search_space", "tail_levels"]

#: Rows per chunk when building the (rows x support points) matrix.
_CHUNK = 20_000


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


class CostAwareRegressor(BasePredictor):
    """Per-job cost-optimal allocation from a location-scale model of ``log(peak)``.

    Parameters
    ----------
    penalty : float
        The business score's penalty (price of a failure in units of the mean peak).
    n_estimators, learning_rate, num_leaves, min_child_samples :
        The location booster (LightGBM, squared error on ``log(peak)``).
    scale_n_estimators, scale_num_leaves, scale_min_child_samples :
        The scale booster (LightGBM on absolute out-of-fold residuals).
    n_folds : int
        Folds of the cross-fitting.
    shuffle_folds : bool
        Cross-fit on shuffled folds instead of contiguous blocks of time. Blocks price the
        errors of predicting later jobs (drift included); on workflows that run their task types
        in phases a block holds types the other blocks never saw, and shuffled folds measure the
        error on known types instead. Searched.
    n_support : int
        Sample points per job's predictive distribution.
    calibration : float
        Multiplier of the predicted scale (>1 widens the distribution).
    random_state : int
    n_jobs : int

    Attributes
    ----------
    location_model_, scale_model_ : lightgbm.LGBMRegressor
    residual_quantiles_ : ndarray of shape (n_support,)
        Quantiles of the standardised out-of-fold residuals at ``levels_``.
    levels_, weights_ : ndarray of shape (n_support,)
    scale_floor_ : float
        Smallest scale predicted.
    """

    def __init__(
        self,
        penalty: float = DEFAULT_PENALTY,
        n_estimators: int = 100,
        learning_rate: float = 0.15,
        num_leaves: int = 15,
        min_child_samples: int = 20,
        scale_n_estimators: int = 50,
        scale_num_leaves: int = 15,
        scale_min_child_samples: int = 50,
        n_folds: int = 3,
        shuffle_folds: bool = False,
        n_support: int = 128,
        calibration: float = 1.0,
        random_state: int = 0,
        n_jobs: int = 1,
    ):
        self.penalty = penalty
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.scale_n_estimators = scale_n_estimators
        self.scale_num_leaves = scale_num_leaves
        self.scale_min_child_samples = scale_min_child_samples
        self.n_folds = n_folds
        self.shuffle_folds = shuffle_folds
        self.n_support = n_support
        self.calibration = calibration
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _booster(self, n_estimators: int, num_leaves: int, min_child_samples: int, n_rows: int):
        return LGBMRegressor(
            n_estimators=n_estimators,
            learning_rate=self.learning_rate,
            num_leaves=num_leaves,
            # Tiny training sets (estimator checks, unit tests) still get leaves.
            min_child_samples=max(1, min(min_child_samples, n_rows // 4)),
            random_state=self.random_state,
            n_jobs=self.n_jobs,
            verbose=-1,
        )

    def _location(self, n_rows: int):
        return self._booster(self.n_estimators, self.num_leaves, self.min_child_samples, n_rows)

    def _scale(self, n_rows: int):
        return self._booster(
            self.scale_n_estimators, self.scale_num_leaves, self.scale_min_child_samples, n_rows
        )

    def _cross_fit(self, make, Xa, target, folds) -> np.ndarray:
        """Out-of-fold predictions of ``make(n)`` models."""
        out = np.empty(target.size)
        mask, counts = self.categorical_mask_, self._category_counts()
        for train, test in folds:
            model = fit_with_categoricals(make(train.size), Xa[train], target[train], mask, counts)
            out[test] = predict_fast(model, Xa[test])
        return out

    def fit(self, X, y):
        """Cross-fit location and scale, keep the residual quantiles, fit the final models."""
        Xa, y = self._validate_fit(X, y)
        if self.calibration <= 0:
            raise ValueError(f"calibration must be positive, got {self.calibration}")
        if int(self.n_folds) < 2:
            raise ValueError(f"n_folds must be at least 2, got {self.n_folds}")
        n = y.size
        z = np.log(y)
        seed = self.random_state if self.shuffle_folds else None
        kfold = KFold(min(int(self.n_folds), n), shuffle=bool(self.shuffle_folds), random_state=seed)
        folds = list(kfold.split(Xa))
        residual = z - self._cross_fit(self._location, Xa, z, folds)
        abs_res = np.abs(residual)
        floor = max(float(np.quantile(abs_res, 0.05)), 1e-6)
        scale_oof = np.maximum(self._cross_fit(self._scale, Xa, abs_res, folds), floor)
        standardised = residual / scale_oof

        mask, counts = self.categorical_mask_, self._category_counts()
        self.location_model_ = fit_with_categoricals(self._location(n), Xa, z, mask, counts)
        self.scale_model_ = fit_with_categoricals(self._scale(n), Xa, abs_res, mask, counts)
        self.scale_floor_ = floor
        self.levels_, self.weights_ = tail_levels(int(self.n_support))
        self.residual_quantiles_ = np.quantile(standardised, self.levels_)
        return self

    def unit_cost(self) -> float:
        """Price of a failure in GB: ``penalty x`` :meth:`peak_unit_gb` (latest jobs' mean peak).

        Read at prediction time, so ``set_params(penalty=...)`` on a fitted model re-prices the
        allocations without refitting (the distributions do not depend on the penalty).
        """
        check_is_fitted(self)
        return unit_failure_cost(self.peak_unit_gb(), self.penalty)

    def _location_scale(self, Xa: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.penalty <= 0:
            raise ValueError(f"penalty must be positive, got {self.penalty}")
        mu = predict_fast(self.location_model_, Xa)
        scale = np.maximum(predict_fast(self.scale_model_, Xa), self.scale_floor_)
        return mu, scale * self.calibration

    def _predict(self, Xa: np.ndarray) -> np.ndarray:
        mu, scale = self._location_scale(Xa)
        out = np.empty(mu.size)
        q, unit_cost = self.residual_quantiles_, self.unit_cost()
        for start in range(0, mu.size, _CHUNK):
            sl = slice(start, start + _CHUNK)
            samples = np.exp(mu[sl, None] + scale[sl, None] * q[None, :])
            out[sl] = optimal_allocation_from_samples(samples, unit_cost, self.weights_)
        return out

    def explain(self, X) -> pd.DataFrame:
        """Allocation, the predicted median peak and log-scale, and the quantile level chosen."""
        check_is_fitted(self)
        Xa = self._validate_X(X, reset=False)
        mu, scale = self._location_scale(Xa)
        alloc = self._as_allocation(self._predict(Xa))
        z = (np.log(alloc)[:, None] - mu[:, None]) / scale[:, None]
        level = (self.weights_[None, :] * (self.residual_quantiles_[None, :] <= z + 1e-12)).sum(1)
        return pd.DataFrame(
            {
                "allocation_gb": alloc,
                "median_gb": np.exp(mu + scale * np.interp(0.5, self.levels_, self.residual_quantiles_)),
                "log_scale": scale,
                "quantile_level": level,
            }
        )


def search_space(trial) -> dict:
    """Optuna search space of :class:`CostAwareRegressor` (the penalty is the study's, not tuned)."""
    return {
        **suggest_preprocessor_params(trial),
        "n_estimators": trial.suggest_int("n_estimators", 50, 150, step=25),
        "learning_rate": trial.suggest_float("learning_rate", 0.03, 0.3, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 7, 63, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 5, 100, log=True),
        "scale_num_leaves": trial.suggest_int("scale_num_leaves", 4, 63, log=True),
        "calibration": trial.suggest_float("calibration", 0.8, 1.3),
        "shuffle_folds": trial.suggest_categorical("shuffle_folds", [False, True]),
    }
