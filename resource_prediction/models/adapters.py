"""What differs between learning libraries, kept in one table.

The models are written against scikit-learn's estimator API; the few things that API does not
unify (the name of the quantile level, how to declare categorical columns, the feature encoding a
linear model needs, the fast prediction path, which of the model's ``random_state`` / ``n_jobs`` it
takes) are looked up here by the estimator's class name. Adding a library is one
:func:`register_adapter` call, not a new model class: the composed models (the quantile ensemble's
members, the binned classifier's ``classifier``, the policy regressor's ``booster``) take any
estimator.

Examples
--------
>>> from sklearn.ensemble import GradientBoostingRegressor
>>> with_quantile(GradientBoostingRegressor(), 0.9).get_params()["alpha"]
0.9
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

__all__ = [
    "LibraryAdapter",
    "adapter_for",
    "fit_with_categoricals",
    "predict_fast",
    "predict_proba_fast",
    "register_adapter",
    "with_quantile",
    "with_shared_params",
    "with_squared_error",
]

#: Predictions of at least this many rows use every core (LightGBM); smaller ones the model's
#: ``n_jobs`` (one thread by default: fastest for single jobs).
PARALLEL_PREDICT_ROWS = 10_000
#: Histogram gradient boosting keeps at most this many categories per categorical feature.
_HGB_MAX_CATEGORIES = 255
#: Linear models: most frequent categories one-hot encoded per categorical column (the rest grouped).
ONEHOT_MAX_CATEGORIES = 50


def _no_params(*_args) -> dict[str, Any]:
    return {}


def _predict(estimator, X: np.ndarray) -> np.ndarray:
    return estimator.predict(X)


def _predict_proba(estimator, X: np.ndarray) -> np.ndarray:
    return estimator.predict_proba(X)


@dataclass(frozen=True)
class LibraryAdapter:
    """How to drive one library's estimator.

    Parameters
    ----------
    quantile : callable(alpha) -> dict, optional
        Constructor parameters that make the estimator fit the ``alpha`` quantile.
    squared_error : callable() -> dict, optional
        Constructor parameters for a squared-error fit.
    categorical_params : callable(mask, cardinality) -> dict
        Constructor parameters declaring the categorical columns (boolean mask, category counts).
    categorical_fit_params : callable(mask) -> dict
        ``fit`` keyword arguments declaring them.
    predict, predict_proba : callable(estimator, X) -> ndarray
        Prediction on a float matrix (the libraries' low-overhead path where there is one).
    handles_categoricals : callable(estimator) -> bool
        False when this configuration of the estimator cannot take categorical columns; they are
        then given as their integer codes (ordered numbers).
    prepare : callable(estimator, mask) -> estimator
        What is fitted in the estimator's place (default: the estimator itself); linear models get
        their categorical columns one-hot encoded and the numeric ones imputed and scaled.
    encoding : {"category", "onehot"}
        The preprocessor encoding the estimator wants
        (:attr:`~resource_prediction.models.BasePredictor.preferred_encoding`).
    shared_params : tuple of str
        The composing model's parameters the estimator takes (when it has them): ``random_state``
        and ``n_jobs`` by default.
    expected_warnings : tuple of Warning classes
        Warnings of the fit that are expected and not shown.
    """

    quantile: Callable[[float], dict[str, Any]] | None = None
    squared_error: Callable[[], dict[str, Any]] | None = None
    categorical_params: Callable[[np.ndarray, np.ndarray], dict[str, Any]] = field(default=_no_params)
    categorical_fit_params: Callable[[np.ndarray], dict[str, Any]] = field(default=_no_params)
    predict: Callable[[Any, np.ndarray], np.ndarray] = field(default=_predict)
    predict_proba: Callable[[Any, np.ndarray], np.ndarray] = field(default=_predict_proba)
    handles_categoricals: Callable[[Any], bool] = field(default=lambda _estimator: True)
    prepare: Callable[[Any, np.ndarray], Any] = field(default=lambda estimator, _mask: estimator)
    encoding: str = "category"
    shared_params: tuple[str, ...] = ("random_state", "n_jobs")
    expected_warnings: tuple[type[Warning], ...] = ()


def _xgb_feature_types(mask: np.ndarray, _cardinality: np.ndarray) -> dict[str, Any]:
    if not mask.any():
        return {}
    return {"feature_types": ["c" if m else "q" for m in mask], "enable_categorical": True}


def _xgb_predict(estimator, X: np.ndarray) -> np.ndarray:
    # BasePredictor has checked the columns already; XGBoost's own check costs 0.1 ms per call.
    booster = estimator.get_booster()
    if X.shape[0] < PARALLEL_PREDICT_ROWS:
        return booster.inplace_predict(X, validate_features=False)
    booster.set_param({"nthread": os.cpu_count() or 1})  # large batch: every core, then back
    try:
        return booster.inplace_predict(X, validate_features=False)
    finally:
        n_jobs = getattr(estimator, "n_jobs", None)
        booster.set_param({"nthread": n_jobs if n_jobs and n_jobs > 0 else os.cpu_count() or 1})


def _lgbm_categoricals(mask: np.ndarray) -> dict[str, Any]:
    return {"categorical_feature": np.flatnonzero(mask).tolist()} if mask.any() else {}


def _lgbm_predict(estimator, X: np.ndarray) -> np.ndarray:
    # The booster ignores the training thread count: without num_threads a single-row
    # prediction wakes every OpenMP thread (tens of ms on a busy machine instead of 0.1 ms).
    # Large batches use every core.
    n_jobs = getattr(estimator, "n_jobs", None)
    small = X.shape[0] < PARALLEL_PREDICT_ROWS
    threads = n_jobs if small and n_jobs and n_jobs > 0 else os.cpu_count() or 1
    return estimator.booster_.predict(X, num_threads=threads)


def _hgb_categoricals(mask: np.ndarray, cardinality: np.ndarray) -> dict[str, Any]:
    usable = mask & (cardinality <= _HGB_MAX_CATEGORIES)
    return {"categorical_features": usable} if usable.any() else {}


def _one_hot_linear(estimator, mask: np.ndarray):
    """The linear model behind one-hot categorical and imputed, standardised numeric columns."""
    numeric = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler())
    categorical = make_pipeline(
        SimpleImputer(strategy="constant", fill_value=-1.0, keep_empty_features=True),
        OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=ONEHOT_MAX_CATEGORIES),
    )
    features = ColumnTransformer(
        [("num", numeric, np.flatnonzero(~mask)), ("cat", categorical, np.flatnonzero(mask))]
    )
    return make_pipeline(features, estimator)


_ADAPTERS: dict[str, LibraryAdapter] = {
    "HistGradientBoostingRegressor": LibraryAdapter(
        quantile=lambda a: {"loss": "quantile", "quantile": a},
        squared_error=lambda: {"loss": "squared_error"},
        categorical_params=_hgb_categoricals,
    ),
    "HistGradientBoostingClassifier": LibraryAdapter(categorical_params=_hgb_categoricals),
    "GradientBoostingRegressor": LibraryAdapter(
        quantile=lambda a: {"loss": "quantile", "alpha": a},
        squared_error=lambda: {"loss": "squared_error"},
    ),
    "XGBRegressor": LibraryAdapter(
        quantile=lambda a: {"objective": "reg:quantileerror", "quantile_alpha": a},
        squared_error=lambda: {"objective": "reg:squarederror"},
        categorical_params=_xgb_feature_types,
        predict=_xgb_predict,
    ),
    "XGBClassifier": LibraryAdapter(
        categorical_params=_xgb_feature_types,
        predict_proba=_xgb_predict,
        # XGBoost's multi-output trees have no categorical splits (3.x).
        handles_categoricals=lambda est: est.get_params().get("multi_strategy") != "multi_output_tree",
    ),
    "LGBMRegressor": LibraryAdapter(
        quantile=lambda a: {"objective": "quantile", "alpha": a},
        squared_error=lambda: {"objective": "regression"},
        categorical_fit_params=_lgbm_categoricals,
        predict=_lgbm_predict,
    ),
    "LGBMClassifier": LibraryAdapter(
        categorical_fit_params=_lgbm_categoricals, predict_proba=_lgbm_predict
    ),
    "LogisticRegression": LibraryAdapter(
        prepare=_one_hot_linear,
        encoding="onehot",
        shared_params=("random_state",),  # its n_jobs has no effect since scikit-learn 1.8
        # Stopping at max_iter regularises too (on the default data 150 iterations score better
        # than 500): reaching it is expected.
        expected_warnings=(ConvergenceWarning,),
    ),
}

_DEFAULT = LibraryAdapter()


def register_adapter(cls: type | str, adapter: LibraryAdapter) -> None:
    """Declare how to drive estimators of class ``cls`` (a class or its ``__name__``)."""
    _ADAPTERS[cls if isinstance(cls, str) else cls.__name__] = adapter


def adapter_for(estimator) -> LibraryAdapter:
    """The adapter of the estimator's class or its nearest registered base class."""
    for klass in type(estimator).__mro__:
        adapter = _ADAPTERS.get(klass.__name__)
        if adapter is not None:
            return adapter
    return _DEFAULT


def _configured(estimator, params_fn, what: str, *args):
    if params_fn is None:
        raise ValueError(
            f"{type(estimator).__name__} has no registered {what} objective; declare it with "
            "resource_prediction.models.adapters.register_adapter"
        )
    return clone(estimator).set_params(**params_fn(*args))


def with_quantile(estimator, alpha: float):
    """A clone of ``estimator`` set to fit the ``alpha`` quantile."""
    return _configured(estimator, adapter_for(estimator).quantile, "quantile", alpha)


def with_squared_error(estimator):
    """A clone of ``estimator`` set to a squared-error fit."""
    return _configured(estimator, adapter_for(estimator).squared_error, "squared-error")


def with_shared_params(estimator, **params):
    """Set the composing model's ``params`` (not None) that the estimator's library takes; return it."""
    accepted = set(adapter_for(estimator).shared_params) & set(estimator.get_params(deep=False))
    shared = {k: v for k, v in params.items() if v is not None and k in accepted}
    return estimator.set_params(**shared) if shared else estimator


def fit_with_categoricals(estimator, X: np.ndarray, y: np.ndarray, mask: np.ndarray, cardinality):
    """Declare the categorical columns the library's way, then fit ``estimator``.

    Returns what was fitted: ``estimator`` itself, or what the adapter's ``prepare`` put in its
    place (a linear model's encoding pipeline).
    """
    adapter = adapter_for(estimator)
    if not adapter.handles_categoricals(estimator):
        mask = np.zeros_like(mask)
    params = adapter.categorical_params(mask, np.asarray(cardinality))
    if params:
        estimator.set_params(**params)
    fitted = adapter.prepare(estimator, mask)
    with warnings.catch_warnings():
        for category in adapter.expected_warnings:
            warnings.simplefilter("ignore", category)
        return fitted.fit(X, y, **adapter.categorical_fit_params(mask))


def predict_fast(estimator, X: np.ndarray) -> np.ndarray:
    """``estimator.predict`` through the library's low-overhead path (1-D float array)."""
    return np.asarray(adapter_for(estimator).predict(estimator, X), dtype=np.float64).ravel()


def predict_proba_fast(estimator, X: np.ndarray) -> np.ndarray:
    """Class probabilities ``(n, n_classes)`` through the low-overhead path."""
    proba = np.asarray(adapter_for(estimator).predict_proba(estimator, X), dtype=np.float64)
    if proba.ndim == 1:  # binary boosters return the positive class only
        proba = np.column_stack([1.0 - proba, proba])
    return proba
