"""Gradient boosting that predicts the allocation directly, under an allocation policy.

* ``policy="quantile"``: the booster fits the ``alpha`` quantile of the peak; that is the
  allocation.
* ``policy="margin"``: the booster fits the (log) peak with squared error; the allocation is that
  estimate times ``margin``.

:class:`PolicyBoostingRegressor` takes the booster as a parameter (``booster=``, any regressor whose
library has its quantile and squared-error objectives in :mod:`~resource_prediction.models.adapters`;
its parameters are ``booster__<param>``). The registry's ``xgboost_regression`` and
``lightgbm_regression`` are this class over :data:`XGBOOST` and :data:`LIGHTGBM`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from lightgbm import LGBMRegressor
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.utils.validation import check_is_fitted
from xgboost import XGBRegressor

from resource_prediction.models.adapters import (
    fit_with_categoricals,
    predict_fast,
    with_quantile,
    with_shared_params,
    with_squared_error,
)
from resource_prediction.models.base import (
    BasePredictor,
    limit_threads,
    suggest_preprocessor_params,
)

__all__ = [
    "LIGHTGBM",
    "XGBOOST",
    "PolicyBoostingRegressor",
    "lightgbm_search_space",
    "xgboost_search_space",
]

#: How each policy sets the booster's objective.
_OBJECTIVES = {
    "quantile": lambda est, model: with_quantile(est, model.alpha),
    "margin": lambda est, model: with_squared_error(est),
}


class PolicyBoostingRegressor(BasePredictor):
    """A booster predicting the allocation under a policy (see the module docstring).

    Parameters
    ----------
    booster : regressor, optional
        Cloned and given the policy's objective before fitting; its parameters are
        ``booster__<param>``. Default: :class:`sklearn.ensemble.HistGradientBoostingRegressor`.
    policy : {"quantile", "margin"}
    alpha : float
        Quantile level of the ``quantile`` policy.
    margin : float
        Multiplier of the ``margin`` policy.
    log_target : bool
        Fit ``log(peak)``.
    random_state : int or None
        Given to the booster when its library takes one.
    n_jobs : int or None
        Threads (1 is fastest for single-job prediction): given to the booster when its library
        takes them, and the cap of the OpenMP/BLAS pools while fitting (None: no cap).

    Attributes
    ----------
    estimator_ : regressor
        The fitted booster.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 2)); y = np.exp(X[:, 0] + 0.1 * rng.normal(size=300))
    >>> model = PolicyBoostingRegressor(LGBMRegressor(n_estimators=20, verbose=-1), alpha=0.9)
    >>> bool(np.all(model.fit(X, y).predict(X) > 0)), model.get_params()["booster__n_estimators"]
    (True, 20)
    """

    def __init__(
        self,
        booster=None,
        policy: str = "quantile",
        alpha: float = 0.95,
        margin: float = 1.5,
        log_target: bool = True,
        random_state: int | None = 0,
        n_jobs: int | None = 1,
    ):
        self.booster = booster
        self.policy = policy
        self.alpha = alpha
        self.margin = margin
        self.log_target = log_target
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(self, X, y):
        """Fit the booster under the policy's objective."""
        Xa, y = self._validate_fit(X, y)
        if self.policy not in _OBJECTIVES:
            raise ValueError(f"policy must be one of {sorted(_OBJECTIVES)}, got {self.policy!r}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.margin <= 0:
            raise ValueError(f"margin must be positive, got {self.margin}")
        booster = HistGradientBoostingRegressor() if self.booster is None else clone(self.booster)
        booster = with_shared_params(
            _OBJECTIVES[self.policy](booster, self), random_state=self.random_state, n_jobs=self.n_jobs
        )
        target = np.log(y) if self.log_target else y
        with limit_threads(self.n_jobs):
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


#: XGBoost booster (the policy sets its objective).
XGBOOST = PolicyBoostingRegressor(
    XGBRegressor(
        n_estimators=100, learning_rate=0.1, max_depth=5, min_child_weight=5.0, subsample=0.9,
        colsample_bytree=1.0, reg_lambda=1.0,
    )
)
#: LightGBM booster (the policy sets its objective). ``subsample_freq=1``: LightGBM bags only with
#: a frequency, and a ``subsample`` of 1 then draws every job.
LIGHTGBM = PolicyBoostingRegressor(
    LGBMRegressor(
        n_estimators=100, learning_rate=0.1, num_leaves=15, min_child_samples=20, subsample=0.9,
        subsample_freq=1, colsample_bytree=1.0, reg_lambda=0.0, verbose=-1,
    )
)


def _policy_params(trial) -> dict:
    """The policy and the booster parameters both libraries share."""
    policy = trial.suggest_categorical("policy", ["quantile", "margin"])
    params = {**suggest_preprocessor_params(trial), "policy": policy}
    if policy == "quantile":
        params["alpha"] = trial.suggest_float("alpha", 0.90, 0.995)
    else:
        params["margin"] = trial.suggest_float("margin", 1.1, 3.0)
    return {
        **params,
        "booster__n_estimators": trial.suggest_int("booster__n_estimators", 50, 150, step=25),
        "booster__learning_rate": trial.suggest_float("booster__learning_rate", 0.02, 0.2, log=True),
        "booster__subsample": trial.suggest_float("booster__subsample", 0.6, 1.0),
        "booster__colsample_bytree": trial.suggest_float("booster__colsample_bytree", 0.5, 1.0),
    }


def xgboost_search_space(trial) -> dict:
    """Optuna search space of :data:`XGBOOST`."""
    return {
        **_policy_params(trial),
        "booster__max_depth": trial.suggest_int("booster__max_depth", 3, 7),
        "booster__min_child_weight": trial.suggest_float("booster__min_child_weight", 1.0, 50.0, log=True),
        "booster__reg_lambda": trial.suggest_float("booster__reg_lambda", 1e-3, 10.0, log=True),
    }


def lightgbm_search_space(trial) -> dict:
    """Optuna search space of :data:`LIGHTGBM`."""
    return {
        **_policy_params(trial),
        "booster__num_leaves": trial.suggest_int("booster__num_leaves", 7, 63, log=True),
        "booster__min_child_samples": trial.suggest_int("booster__min_child_samples", 5, 100, log=True),
        "booster__reg_lambda": trial.suggest_float("booster__reg_lambda", 1e-3, 10.0, log=True),
    }
