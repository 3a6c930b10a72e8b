"""One composable quantile ensemble: members as data, the highest quantile wins.

Each member is any regressor whose library has a quantile objective registered in
:mod:`resource_prediction.models.adapters` (scikit-learn's gradient boosting, XGBoost, LightGBM);
it is cloned, set to the ensemble's ``alpha`` quantile and fitted. The allocation is the largest
member prediction times ``safety``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.utils import Bunch
from sklearn.utils.validation import check_is_fitted
from xgboost import XGBRegressor

from resource_prediction.models.adapters import (
    fit_with_categoricals,
    predict_fast,
    with_quantile,
    with_shared_params,
)
from resource_prediction.models.base import (
    BasePredictor,
    limit_threads,
    suggest_preprocessor_params,
)

__all__ = ["DEFAULT_MEMBERS", "QuantileEnsembleRegressor", "search_space"]

#: The default members. Shared, never fitted or modified: the ensemble fits clones, and
#: ``set_params`` on member parameters copies them first.
DEFAULT_MEMBERS: tuple = (
    (
        "hgb",
        HistGradientBoostingRegressor(
            loss="quantile",
            max_iter=100,
            learning_rate=0.1,
            max_leaf_nodes=15,
            min_samples_leaf=20,
            early_stopping=False,
            random_state=0,
        ),
    ),
    (
        "xgb",
        XGBRegressor(
            objective="reg:quantileerror",
            n_estimators=100,
            learning_rate=0.1,
            max_depth=5,
            min_child_weight=5.0,
            subsample=0.9,
            n_jobs=1,
            random_state=0,
        ),
    ),
)


class QuantileEnsembleRegressor(BasePredictor):
    """Largest of several quantile regressors at level ``alpha``, times ``safety``.

    Parameters
    ----------
    members : list of (str, estimator)
        The member regressors, as for :class:`sklearn.ensemble.VotingRegressor`. Their
        parameters are reachable as ``<name>__<param>``. A LightGBM member composes in as
        ``("lgbm", lightgbm.LGBMRegressor())``.
    alpha : float
        The quantile level every member fits, in (0, 1).
    safety : float
        Multiplier applied to the largest member prediction.
    log_target : bool
        Fit the quantile of ``log(peak)`` and exponentiate (the same quantile, learnt with every
        job weighing alike instead of the largest jobs dominating the loss).
    random_state : int or None
        When set, given to every member that has a ``random_state``.
    n_jobs : int or None
        Threads while fitting: given to members that have ``n_jobs`` and used as the cap of the
        OpenMP/BLAS pools (None: no cap, members keep their own setting).

    Attributes
    ----------
    estimators_ : list of estimators
        The fitted clones, in member order.
    named_estimators_ : Bunch
        The same, by member name.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.base import clone
    >>> from sklearn.ensemble import GradientBoostingRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 2)); y = np.exp(X[:, 0] + 0.1 * rng.normal(size=300))
    >>> qe = QuantileEnsembleRegressor(
    ...     members=[("gb", GradientBoostingRegressor(n_estimators=20))], alpha=0.9
    ... ).fit(X, y)
    >>> bool(np.all(qe.predict(X) > 0)), qe.get_params()["gb__n_estimators"]
    (True, 20)
    """

    def __init__(
        self,
        members=DEFAULT_MEMBERS,
        alpha: float = 0.95,
        safety: float = 1.0,
        log_target: bool = True,
        random_state: int | None = None,
        n_jobs: int | None = 1,
    ):
        self.members = members
        self.alpha = alpha
        self.safety = safety
        self.log_target = log_target
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _member_list(self) -> list:
        """``members`` as a list of ``(name, estimator)`` pairs (``[]`` when it is not one)."""
        try:
            return [(name, est) for name, est in self.members]
        except (TypeError, ValueError):  # being replaced through set_params: checked in fit
            return []

    def get_params(self, deep: bool = True):
        """Parameters, with each member as ``<name>`` and its parameters as ``<name>__<param>``."""
        out = super().get_params(deep=False)
        if not deep:
            return out
        for name, member in self._member_list():
            out[name] = member
            if hasattr(member, "get_params"):
                out.update({f"{name}__{k}": v for k, v in member.get_params(deep=True).items()})
        return out

    def set_params(self, **params):
        """Set parameters: ``members``, a member by name, ``<name>__<param>``; unknown keys raise."""
        if "members" in params:
            self.members = params.pop("members")
        names = {name for name, _ in self._member_list()}
        if self.members is DEFAULT_MEMBERS and any(key.split("__")[0] in names for key in params):
            # Copy before changing a member so the shared defaults are never modified.
            self.members = [(name, clone(est)) for name, est in DEFAULT_MEMBERS]
        replaced = {key: params.pop(key) for key in list(params) if key in names}
        if replaced:
            self.members = [(name, replaced.get(name, est)) for name, est in self._member_list()]
        return super().set_params(**params)  # scikit-learn routes <name>__<param> to the member

    def _check_member_names(self, names: list[str]) -> None:
        if len(set(names)) != len(names):
            raise ValueError(f"member names must be unique, got {names}")
        clash = sorted(set(names) & set(super().get_params(deep=False)))
        if clash:
            raise ValueError(f"member names {clash} clash with the ensemble's own parameters")
        if any("__" in name for name in names):
            raise ValueError(f"member names must not contain '__', got {names}")

    def fit(self, X, y):
        """Fit a clone of every member at quantile ``alpha``."""
        Xa, y = self._validate_fit(X, y)
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.safety <= 0:
            raise ValueError(f"safety must be positive, got {self.safety}")
        if not self.members:
            raise ValueError("members is empty: give at least one (name, estimator) pair")
        names = [name for name, _ in self.members]
        self._check_member_names(names)
        target = np.log(y) if self.log_target else y
        mask, counts = self.categorical_mask_, self._category_counts()
        self.estimators_ = []
        with limit_threads(self.n_jobs):
            for _, member in self.members:
                est = with_shared_params(
                    with_quantile(member, self.alpha), random_state=self.random_state, n_jobs=self.n_jobs
                )
                self.estimators_.append(fit_with_categoricals(est, Xa, target, mask, counts))
        self.named_estimators_ = Bunch(**dict(zip(names, self.estimators_, strict=True)))
        return self

    def _member_predictions(self, Xa: np.ndarray) -> np.ndarray:
        preds = np.column_stack([predict_fast(est, Xa) for est in self.estimators_])
        return np.exp(preds) if self.log_target else preds

    def _predict(self, Xa: np.ndarray) -> np.ndarray:
        return self._member_predictions(Xa).max(axis=1) * self.safety

    def explain(self, X) -> pd.DataFrame:
        """Allocation, ``alpha``, ``safety`` and each member's prediction (GB, before safety)."""
        check_is_fitted(self)
        Xa = self._validate_X(X, reset=False)
        preds = self._member_predictions(Xa)
        out = pd.DataFrame({"allocation_gb": self._as_allocation(preds.max(axis=1) * self.safety)})
        out["alpha"] = self.alpha
        out["safety"] = self.safety
        for j, name in enumerate(self.named_estimators_):
            out[f"{name}_gb"] = preds[:, j]
        return out


def search_space(trial) -> dict:
    """Optuna search space of the default two-member ensemble."""
    return {
        **suggest_preprocessor_params(trial),
        "alpha": trial.suggest_float("alpha", 0.90, 0.995),
        "safety": trial.suggest_float("safety", 1.0, 1.5),
        "hgb__learning_rate": trial.suggest_float("hgb__learning_rate", 0.03, 0.3, log=True),
        "hgb__max_leaf_nodes": trial.suggest_int("hgb__max_leaf_nodes", 7, 31),
        "xgb__learning_rate": trial.suggest_float("xgb__learning_rate", 0.03, 0.3, log=True),
        "xgb__max_depth": trial.suggest_int("xgb__max_depth", 3, 6),
    }
