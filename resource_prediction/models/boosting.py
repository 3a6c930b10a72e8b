"""Gradient boosting that predicts the allocation directly, under an allocation policy.

* ``policy="quantile"``: the booster fits the ``alpha`` quantile of the peak; that is the
  allocation.
* ``policy="margin"``: the booster fits the (log) peak with squared error; the allocation is that
  estimate times ``margin``.

:class:`XGBoostPolicyRegressor` and :class:`LightGBMPolicyRegressor` differ only in the booster
they build; the policy lives once in :class:`PolicyBoostingRegressor`.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np
import pandas as pd
from lightgbm import LGBMRegressor
from sklearn.utils.validation import check_is_fitted
from xgboost import XGBRegressor

from resource_prediction.models.adapters import (
    fit_with_categoricals,
    predict_fast,
    with_quantile,
    with_squared_error,
)
from resource_prediction.models.base import BasePredictor, suggest_preprocessor_params

__all__ = [
    "LightGBMPolicyRegressor",
    "PolicyBoostingRegressor",
    "XGBoostPolicyRegressor",
    "lightgbm_search_space",
    "xgboost_search_space",
]

#: How each policy sets the booster's objective.
_OBJECTIVES = {
    "quantile": lambda est, model: with_quantile(est, model.alpha),
    "margin": lambda est, model: with_squared_error(est),
}


class PolicyBoostingRegressor(BasePredictor):
    """Shared fit/predict of the direct boosting regressors (abstract: see the subclasses).

    Subclasses define their booster parameters in ``__init__`` and build the booster in
    :meth:`_make_booster`. Common parameters: ``policy`` ({"quantile", "margin"}), ``alpha``
    (quantile level of the quantile policy), ``margin`` (multiplier of the margin policy),
    ``log_target`` (fit on ``log(peak)``).
    """

    @abstractmethod
    def _make_booster(self):
        """The unfitted booster (objective set later by the policy)."""

    def fit(self, X, y):
        """Fit the booster under the policy's objective."""
        Xa, y = self._validate_fit(X, y)
        if self.policy not in _OBJECTIVES:
            raise ValueError(f"policy must be one of {sorted(_OBJECTIVES)}, got {self.policy!r}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.margin <= 0:
            raise ValueError(f"margin must be positive, got {self.margin}")
        booster = _OBJECTIVES[self.policy](self._make_booster(), self)
        target = np.log(y) if self.log_target else y
        self.estimator_ = fit_with_categoricals(
            booster, Xa, target, self.categorical_mask_, self._category_counts()
        )
        return self

    def _estimate(self, Xa: np.ndarray) -> np.ndarray:
        raw = predict_fast(self.estimator_, Xa)
        return np.exp(raw) if self.log_target else raw

    def _multiplier(self) -> float:
        return self.margin if self.policy == "margin" else 1.0

    def _predict(self, Xa: np.ndarray) -> np.ndarray:
        return self._estimate(Xa) * self._multiplier()

    def explain(self, X) -> pd.DataFrame:
        """Allocation, the booster's estimate (GB), the policy and its parameter."""
        check_is_fitted(self)
        estimate = self._estimate(self._validate_X(X, reset=False))
        out = pd.DataFrame({"allocation_gb": self._as_allocation(estimate * self._multiplier())})
        out["estimate_gb"] = estimate
        out["policy"] = self.policy
        out["alpha" if self.policy == "quantile" else "margin"] = (
            self.alpha if self.policy == "quantile" else self.margin
        )
        return out


class XGBoostPolicyRegressor(PolicyBoostingRegressor):
    """XGBoost booster predicting the allocation directly.

    Parameters
    ----------
    policy : {"quantile", "margin"}
    alpha : float
        Quantile level of the ``quantile`` policy.
    margin : float
        Multiplier of the ``margin`` policy.
    log_target : bool
        Fit ``log(peak)``.
    n_estimators, learning_rate, max_depth, min_child_weight, subsample, colsample_bytree, \
reg_lambda : booster parameters (see :class:`xgboost.XGBRegressor`).
    random_state : int
    n_jobs : int
        Threads (1 is fastest for single-job prediction).

    Attributes
    ----------
    estimator_ : xgboost.XGBRegressor
    """

    def __init__(
        self,
        policy: str = "quantile",
        alpha: float = 0.95,
        margin: float = 1.5,
        log_target: bool = True,
        n_estimators: int = 100,
        learning_rate: float = 0.1,
        max_depth: int = 5,
        min_child_weight: float = 5.0,
        subsample: float = 0.9,
        colsample_bytree: float = 1.0,
        reg_lambda: float = 1.0,
        random_state: int = 0,
        n_jobs: int = 1,
    ):
        self.policy = policy
        self.alpha = alpha
        self.margin = margin
        self.log_target = log_target
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_child_weight = min_child_weight
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _make_booster(self):
        return XGBRegressor(
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            max_depth=self.max_depth,
            min_child_weight=self.min_child_weight,
            subsample=self.subsample,
            colsample_bytree=self.colsample_bytree,
            reg_lambda=self.reg_lambda,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
        )


class LightGBMPolicyRegressor(PolicyBoostingRegressor):
    """LightGBM booster predicting the allocation directly.

    Parameters
    ----------
    policy : {"quantile", "margin"}
    alpha : float
        Quantile level of the ``quantile`` policy.
    margin : float
        Multiplier of the ``margin`` policy.
    log_target : bool
        Fit ``log(peak)``.
    n_estimators, learning_rate, num_leaves, min_child_samples, subsample, colsample_bytree, \
reg_lambda : booster parameters (see :class:`lightgbm.LGBMRegressor`).
    random_state : int
    n_jobs : int
        Threads (1 is fastest for single-job prediction).

    Attributes
    ----------
    estimator_ : lightgbm.LGBMRegressor
    """

    def __init__(
        self,
        policy: str = "quantile",
        alpha: float = 0.95,
        margin: float = 1.5,
        log_target: bool = True,
        n_estimators: int = 100,
        learning_rate: float = 0.1,
        num_leaves: int = 15,
        min_child_samples: int = 20,
        subsample: float = 0.9,
        colsample_bytree: float = 1.0,
        reg_lambda: float = 0.0,
        random_state: int = 0,
        n_jobs: int = 1,
    ):
        self.policy = policy
        self.alpha = alpha
        self.margin = margin
        self.log_target = log_target
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _make_booster(self):
        return LGBMRegressor(
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples,
            subsample=self.subsample,
            subsample_freq=1 if self.subsample < 1.0 else 0,
            colsample_bytree=self.colsample_bytree,
            reg_lambda=self.reg_lambda,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
            verbose=-1,
        )


def _policy_params(trial) -> dict:
    policy = trial.suggest_categorical("policy", ["quantile", "margin"])
    params = {**suggest_preprocessor_params(trial), "policy": policy}
    if policy == "quantile":
        params["alpha"] = trial.suggest_float("alpha", 0.90, 0.995)
    else:
        params["margin"] = trial.suggest_float("margin", 1.1, 3.0)
    params["n_estimators"] = trial.suggest_int("n_estimators", 50, 150, step=25)
    params["learning_rate"] = trial.suggest_float("learning_rate", 0.02, 0.2, log=True)
    params["subsample"] = trial.suggest_float("subsample", 0.6, 1.0)
    params["colsample_bytree"] = trial.suggest_float("colsample_bytree", 0.5, 1.0)
    return params


def xgboost_search_space(trial) -> dict:
    """Optuna search space of :class:`XGBoostPolicyRegressor`."""
    return {
        **_policy_params(trial),
        "max_depth": trial.suggest_int("max_depth", 3, 7),
        "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 50.0, log=True),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
    }


def lightgbm_search_space(trial) -> dict:
    """Optuna search space of :class:`LightGBMPolicyRegressor`."""
    return {
        **_policy_params(trial),
        "num_leaves": trial.suggest_int("num_leaves", 7, 63, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 5, 100, log=True),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
    }
