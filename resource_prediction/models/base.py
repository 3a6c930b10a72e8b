"""The contract every memory predictor follows.

A predictor answers one question: how many GB to allocate to each job. It is a scikit-learn
estimator (``get_params``/``set_params``, ``clone``, ``fit(X, y)`` returning ``self``, learnt state
ending in ``_``) whose ``predict(X)`` returns allocations in GB.

``X`` is a feature DataFrame (categoricals as pandas ``category``, numerics as floats, as the
:class:`~resource_prediction.preprocessing.ModelPreprocessor` makes them) or a numeric array;
``y`` is the jobs' peak memory in GB. :meth:`BasePredictor.score` is minus the business score, so
``cross_val_score`` and ``GridSearchCV`` rank predictors by the business score without a scorer;
:func:`business_scorer` builds the same thing explicitly for any penalty.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager, nullcontext
from typing import ClassVar

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.metrics import make_scorer
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
from threadpoolctl import threadpool_limits

from resource_prediction.metrics import DEFAULT_PENALTY, business_score

__all__ = [
    "PREPROCESSOR_PREFIX",
    "RECENT_FRACTION",
    "RECENT_MIN_JOBS",
    "BasePredictor",
    "NotApplicableError",
    "business_loss",
    "business_scorer",
    "limit_threads",
    "suggest_preprocessor_params",
]

#: Search-space keys starting with this prefix are preprocessor parameters, not model ones:
#: ``{"pre__use_quant_features": True, "alpha": 0.95}`` sets ``use_quant_features`` on the
#: preprocessor and ``alpha`` on the model (the convention of scikit-learn pipeline step names).
PREPROCESSOR_PREFIX = "pre__"
#: Share of the latest training jobs whose mean peak prices a failure
#: (:meth:`BasePredictor.peak_unit_gb`).
RECENT_FRACTION = 0.1
#: ... and at least this many jobs.
RECENT_MIN_JOBS = 50


class NotApplicableError(ValueError):
    """The data lack what a model reads (a baseline's column, such as the configured request of
    data that have none): the family does not apply to them, and nothing else is wrong."""


def suggest_preprocessor_params(trial, use_quant_features=(True, False)) -> dict:
    """The preprocessor part every search space shares: ``pre__use_quant_features``."""
    name = f"{PREPROCESSOR_PREFIX}use_quant_features"
    return {name: trial.suggest_categorical(name, list(use_quant_features))}


def business_loss(y_true, y_pred, penalty: float = DEFAULT_PENALTY) -> float:
    """The business score with scikit-learn's argument order ``(y_true, y_pred)``."""
    return business_score(y_pred, y_true, penalty=penalty)


def business_scorer(penalty: float = DEFAULT_PENALTY):
    """A scorer for ``cross_val_score``/``GridSearchCV``: minus the business score.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import cross_val_score
    >>> from resource_prediction.models import GlobalQuantile
    >>> X, y = np.zeros((40, 1)), np.linspace(1.0, 4.0, 40)
    >>> scores = cross_val_score(GlobalQuantile(), X, y, cv=2, scoring=business_scorer(5.0))
    >>> bool((scores <= 0).all())
    True
    """
    return make_scorer(business_loss, greater_is_better=False, penalty=penalty)


def limit_threads(n_jobs: int | None) -> AbstractContextManager:
    """Cap the OpenMP/BLAS thread pools at ``n_jobs`` (no cap for None or <= 0).

    scikit-learn's histogram boosting and BLAS otherwise start a thread per core, which on a
    shared machine makes a fit ten times slower than with one thread.
    """
    return threadpool_limits(limits=int(n_jobs)) if n_jobs and n_jobs > 0 else nullcontext()


def _is_categorical_like(dtype) -> bool:
    """Category, string or object columns are encoded as integer codes."""
    if isinstance(dtype, pd.CategoricalDtype):
        return True
    return not (is_numeric_dtype(dtype) or is_bool_dtype(dtype))


def _column_arrays(X: pd.DataFrame) -> list:
    """The frame's column arrays without building a Series per column (the single-job hot path).

    Kept private for speed, measured (pandas 3.1, one job's 38 feature columns): pandas'
    ``DataFrame._get_column_array`` takes 31 us where the public ``[s.array for _, s in
    X.items()]`` takes 500 us and ``X.iloc[:, j].array`` 1,260 us, against a 2 ms budget for the
    whole single-job prediction. The public route is the fallback when pandas drops the method.
    """
    getter = getattr(X, "_get_column_array", None)
    if getter is None:  # pragma: no cover - other pandas versions
        return [s.array for _, s in X.items()]
    return [getter(j) for j in range(X.shape[1])]


class BasePredictor(RegressorMixin, BaseEstimator, ABC):
    """Abstract memory predictor: ``predict(X)`` returns the GB to allocate to each job.

    Subclasses implement :meth:`fit` (starting with :meth:`_validate_fit`) and :meth:`_predict`
    (taking the encoded float matrix). Category columns are turned into their integer codes (codes
    of the categories seen in ``fit``; unseen or missing values become NaN) so that the boosting
    libraries run on plain numpy arrays: the fast path for single-job prediction.

    Attributes
    ----------
    preferred_encoding : {"category", "onehot"}
        The feature encoding the model wants from the preprocessor (a class attribute; the composed
        models read it from their member's library adapter).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when fitted on a DataFrame.
    categorical_mask_ : ndarray of bool
        Which feature columns are categorical (encoded as codes).
    categories_ : dict of int -> pandas.Index
        The categories seen in ``fit`` per categorical column position.
    min_peak_gb_ : float
        The smallest training peak: the floor of every allocation.
    mean_peak_gb_ : float
        The mean training peak.
    recent_mean_peak_gb_ : float
        The mean peak of the latest training jobs (:data:`RECENT_FRACTION` of them, at least
        :data:`RECENT_MIN_JOBS`; rows in time order, as :func:`~resource_prediction.data.time_split`
        gives them): the business score's unit of a failure (:meth:`peak_unit_gb`).
    """

    preferred_encoding: ClassVar[str] = "category"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.positive_only = True
        tags.input_tags.allow_nan = True
        # Allocations are deliberately above the peaks: R^2 is not what they optimise.
        tags.regressor_tags.poor_score = True
        return tags

    # ------------------------------------------------------------------ input handling
    def _validate_X(self, X, *, reset: bool) -> np.ndarray:
        """Check ``X`` against what ``fit`` saw and return it as a float matrix."""
        if isinstance(X, pd.DataFrame):
            if reset or not self._same_columns(X):  # scikit-learn's checks explain mismatches
                validate_data(self, X, reset=reset, skip_check_array=True)
            if reset:
                mask = np.array([_is_categorical_like(d) for d in X.dtypes], dtype=bool)
                self.categorical_mask_ = mask
                self.categories_ = {
                    int(j): self._learn_categories(X.iloc[:, j]) for j in np.flatnonzero(mask)
                }
            return self._frame_to_array(X)
        X = validate_data(
            self, X, reset=reset, dtype=np.float64, ensure_all_finite="allow-nan"
        )
        if reset:
            self.categorical_mask_ = np.zeros(X.shape[1], dtype=bool)
            self.categories_ = {}
        return X

    def _same_columns(self, X: pd.DataFrame) -> bool:
        """``X`` has exactly the columns seen in ``fit`` (the cheap check of the hot path)."""
        names = getattr(self, "feature_names_in_", None)
        return names is not None and len(names) == X.shape[1] and all(
            a == b for a, b in zip(X.columns.tolist(), names, strict=True)
        )

    @staticmethod
    def _learn_categories(column: pd.Series) -> pd.Index:
        if isinstance(column.dtype, pd.CategoricalDtype):
            return column.cat.categories
        return pd.Index(pd.unique(column.dropna())).sort_values()

    def _frame_to_array(self, X: pd.DataFrame) -> np.ndarray:
        out = np.empty(X.shape, dtype=np.float64)
        categories = self.categories_
        for j, values in enumerate(_column_arrays(X)):
            cats = categories.get(j)
            if cats is None:
                out[:, j] = (
                    values if isinstance(values, np.ndarray)
                    else values.to_numpy(dtype=np.float64, na_value=np.nan)
                )
                continue
            if isinstance(values, pd.Categorical) and (
                values.categories is cats or values.categories.equals(cats)
            ):
                codes = values.codes
            else:
                codes = cats.get_indexer(np.asarray(values, dtype=object))  # unseen: -1
            out[:, j] = codes
            out[codes < 0, j] = np.nan
        return out

    def _category_counts(self) -> np.ndarray:
        """Number of categories seen in ``fit`` per feature (0 for numeric features)."""
        counts = np.zeros(self.n_features_in_, dtype=np.int64)
        for j, cats in self.categories_.items():
            counts[j] = len(cats)
        return counts

    def _validate_fit(self, X, y) -> tuple[np.ndarray, np.ndarray]:
        """Validate training data; set the input attributes and the peak statistics."""
        Xa = self._validate_X(X, reset=True)
        y = column_or_1d(y, warn=True).astype(np.float64)
        if y.shape[0] != Xa.shape[0]:
            raise ValueError(f"X has {Xa.shape[0]} rows but y has {y.shape[0]}: they must match")
        if Xa.shape[0] < 2:
            raise ValueError(f"need at least 2 jobs to fit, got {Xa.shape[0]} sample(s)")
        if not np.all(np.isfinite(y)) or np.any(y <= 0):
            raise ValueError("y (peak memory in GB) must be finite and strictly positive")
        self.min_peak_gb_ = float(y.min())
        self.mean_peak_gb_ = float(y.mean())
        recent = max(RECENT_MIN_JOBS, int(np.ceil(RECENT_FRACTION * y.size)))
        self.recent_mean_peak_gb_ = float(y[-recent:].mean())
        return Xa, y

    def peak_unit_gb(self) -> float:
        """The mean peak that prices a failure: that of the latest training jobs.

        The score's total over-allocation is relative to the peaks of the jobs being allocated,
        so under drift (memory grows, the mix of tasks moves on) the latest jobs estimate that
        unit better than the whole history. Models fitted before this attribute existed fall
        back to the mean of all training peaks.
        """
        check_is_fitted(self)
        return getattr(self, "recent_mean_peak_gb_", self.mean_peak_gb_)

    # ------------------------------------------------------------------ prediction
    @abstractmethod
    def fit(self, X, y):
        """Learn from features ``X`` and peaks ``y`` (GB); return ``self``."""

    @abstractmethod
    def _predict(self, Xa: np.ndarray) -> np.ndarray:
        """Allocations (GB) for the encoded float matrix ``Xa``."""

    def predict(self, X) -> np.ndarray:
        """Return the GB to allocate to each job (positive, finite, one per row of ``X``)."""
        check_is_fitted(self)
        Xa = self._validate_X(X, reset=False)
        return self._as_allocation(self._predict(Xa))

    def _as_allocation(self, raw: np.ndarray) -> np.ndarray:
        """Floor at the smallest training peak; non-finite values become that floor too."""
        raw = np.asarray(raw, dtype=np.float64).ravel()
        raw = np.where(np.isfinite(raw), raw, self.min_peak_gb_)
        return np.maximum(raw, self.min_peak_gb_)

    def explain(self, X) -> pd.DataFrame:
        """Per-job display information; subclasses add their own columns."""
        return pd.DataFrame({"allocation_gb": self.predict(X)})

    def score(self, X, y, sample_weight=None) -> float:
        """Minus the business score of ``predict(X)`` against peaks ``y`` (greater is better).

        The penalty is the model's ``penalty`` parameter when it has one, else the default.
        """
        if sample_weight is not None:
            raise ValueError("the business score takes no sample weights")
        penalty = getattr(self, "penalty", DEFAULT_PENALTY)
        return -business_loss(np.asarray(y, dtype=float), self.predict(X), penalty=penalty)
