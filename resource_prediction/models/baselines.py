"""Baselines every comparison shows: what is done today, and simple rules.

* :class:`ConfiguredRequest`: the memory the job's configuration requests (``memreq_gb``): what
  the cluster allocates today.
* :class:`GroupPercentile`: the 95th percentile of the job group's recent peaks times a margin
  (``hist_grp_p95_5 x margin``): how Kubernetes VPA / GKE Autopilot recommend requests.
* :class:`HistoryBaseline` as :data:`MAX_SEEN`: the largest peak the job's group has seen so far
  times 1.2, updated as jobs finish (the configured request for a group without history): what
  workflow users and trace-to-config tools do today; and as :data:`VPA`: Kubernetes VPA's
  recommendation for the job's group (90th percentile of a decaying histogram of peaks + 15 %,
  bumped after out-of-memory kills; :mod:`resource_prediction.features.vpa`), the configured
  request until it has history.
* :class:`GlobalQuantile`: one quantile of all training peaks for every job.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from resource_prediction.models.base import (
    BasePredictor,
    NotApplicableError,
    suggest_preprocessor_params,
)

__all__ = [
    "ColumnBaseline",
    "ConfiguredRequest",
    "GlobalQuantile",
    "GroupPercentile",
    "MAX_SEEN",
    "VPA",
    "HistoryBaseline",
    "configured_request_search_space",
    "global_quantile_search_space",
    "group_percentile_search_space",
    "max_seen_search_space",
]


class ColumnBaseline(BasePredictor):
    """Shared part of the baselines that read one feature column (abstract).

    ``column`` is a feature name (DataFrame input) or a position (array input). Rows where the
    column is missing or not positive get ``fallback_gb_``, learnt in :meth:`_fallback`.
    """

    def _column_index(self) -> int:
        if isinstance(self.column, str):
            names = list(getattr(self, "feature_names_in_", []))
            if self.column not in names:
                raise NotApplicableError(
                    f"feature {self.column!r} not found in X (columns: {names}); fit on the "
                    "preprocessor's feature DataFrame (which leaves out a feature without any "
                    "value in the data, such as the request of data that have none) or give a "
                    "column position"
                )
            return names.index(self.column)
        index = int(self.column)
        if not 0 <= index < self.n_features_in_:
            raise ValueError(f"column position {index} out of range for {self.n_features_in_} features")
        return index

    def _fallback(self, values: np.ndarray, y: np.ndarray) -> float:
        """Allocation for rows without a usable value."""
        usable = values[np.isfinite(values) & (values > 0)]
        return float(np.median(usable)) if usable.size else float(np.median(y))

    def fit(self, X, y):
        """Find the column and learn the fallback allocation."""
        Xa, y = self._validate_fit(X, y)
        self._check_params()
        self.column_index_ = self._column_index()
        self.fallback_gb_ = self._fallback(Xa[:, self.column_index_], y)
        return self

    def _check_params(self) -> None:
        """Validate the subclass's own parameters."""

    def _values(self, Xa: np.ndarray) -> np.ndarray:
        return Xa[:, self.column_index_]

    def _predict(self, Xa: np.ndarray) -> np.ndarray:
        values = self._values(Xa)
        usable = np.isfinite(values) & (values > 0)
        return np.where(usable, values, self.fallback_gb_)


class ConfiguredRequest(ColumnBaseline):
    """Allocate the configured request (``memreq_gb``); the fallback is its training median.

    Parameters
    ----------
    column : str or int
        The request column (GB).

    Attributes
    ----------
    fallback_gb_ : float
        Median training request (median training peak if no request is known).
    """

    def __init__(self, column: str | int = "memreq_gb"):
        self.column = column


class GroupPercentile(ColumnBaseline):
    """Allocate the group's recent 95th-percentile peak times ``margin``.

    Parameters
    ----------
    column : str or int
        The per-group rolling percentile (GB), ``hist_grp_p95_5`` by default.
    margin : float
        Multiplier (1.15 by default, in line with VPA-style recommenders).

    Attributes
    ----------
    fallback_gb_ : float
        The training peaks' 95th percentile times ``margin``, for rows without history.
    """

    def __init__(self, column: str | int = "hist_grp_p95_5", margin: float = 1.15):
        self.column = column
        self.margin = margin

    def _check_params(self) -> None:
        if self.margin <= 0:
            raise ValueError(f"margin must be positive, got {self.margin}")

    def _fallback(self, values: np.ndarray, y: np.ndarray) -> float:
        return float(np.quantile(y, 0.95) * self.margin)

    def _values(self, Xa: np.ndarray) -> np.ndarray:
        return Xa[:, self.column_index_] * self.margin


class HistoryBaseline(ColumnBaseline):
    """Allocate a per-group history column times ``margin``; the configured request where the
    group has no peak yet (``history`` below 1) or the column is unusable.

    The registry's ``max_seen`` and ``vpa`` families are two settings of it
    (:data:`MAX_SEEN`, :data:`VPA`).

    Parameters
    ----------
    column : str or int
        The group's recommendation (GB): ``hist_grp_max_seen`` (largest peak so far) or
        ``hist_grp_vpa`` (VPA's, margin and out-of-memory bumps included).
    margin : float
        Multiplier.
    request : str
        The configured request (GB), allocated while the group has no history.
    history : str
        The number of peaks the job's group has seen.

    Attributes
    ----------
    fallback_gb_ : float
        Median training value of the column, for rows with neither history nor request.
    """

    def __init__(self, column: str | int = "hist_grp_max_seen", margin: float = 1.2,
                 request: str = "memreq_gb", history: str = "hist_grp_count"):
        self.column = column
        self.margin = margin
        self.request = request
        self.history = history

    def _check_params(self) -> None:
        if self.margin <= 0:
            raise ValueError(f"margin must be positive, got {self.margin}")
        names = list(getattr(self, "feature_names_in_", []))
        self.request_index_ = names.index(self.request) if self.request in names else None
        self.history_index_ = names.index(self.history) if self.history in names else None

    def _predict(self, Xa: np.ndarray) -> np.ndarray:
        values = Xa[:, self.column_index_] * self.margin
        usable = np.isfinite(values) & (values > 0)
        if self.history_index_ is not None:
            usable &= np.nan_to_num(Xa[:, self.history_index_]) >= 1
        fallback = np.full(values.size, self.fallback_gb_)
        if self.request_index_ is not None:
            request = Xa[:, self.request_index_]
            fallback = np.where(np.isfinite(request) & (request > 0), request, fallback)
        return np.where(usable, values, fallback)


#: The largest peak the group has seen so far x 1.2: what workflow users and trace-to-config tools do.
MAX_SEEN = HistoryBaseline(column="hist_grp_max_seen", margin=1.2)
#: Kubernetes VPA's recommendation as it ships (:mod:`resource_prediction.features.vpa`).
VPA = HistoryBaseline(column="hist_grp_vpa", margin=1.0)


class GlobalQuantile(BasePredictor):
    """Allocate the same quantile of the training peaks to every job.

    Parameters
    ----------
    quantile : float
        In (0, 1].

    Attributes
    ----------
    allocation_gb_ : float

    Examples
    --------
    >>> import numpy as np
    >>> GlobalQuantile(quantile=0.5).fit(np.zeros((3, 1)), [1.0, 2.0, 9.0]).predict(np.zeros((2, 1)))
    array([2., 2.])
    """

    def __init__(self, quantile: float = 0.95):
        self.quantile = quantile

    def fit(self, X, y):
        """Learn the quantile of ``y``."""
        _, y = self._validate_fit(X, y)
        if not 0.0 < self.quantile <= 1.0:
            raise ValueError(f"quantile must be in (0, 1], got {self.quantile}")
        self.allocation_gb_ = float(np.quantile(y, self.quantile))
        return self

    def _predict(self, Xa: np.ndarray) -> np.ndarray:
        return np.full(Xa.shape[0], self.allocation_gb_)

    def explain(self, X) -> pd.DataFrame:
        """Allocation and the quantile it is."""
        check_is_fitted(self)
        out = super().explain(X)
        out["quantile"] = self.quantile
        return out


def configured_request_search_space(trial) -> dict:
    """Nothing to tune but the (unused) feature set."""
    return suggest_preprocessor_params(trial, use_quant_features=(True,))


def group_percentile_search_space(trial) -> dict:
    """The margin over the group percentile."""
    return {
        **suggest_preprocessor_params(trial, use_quant_features=(True,)),
        "margin": trial.suggest_float("margin", 1.0, 2.0),
    }


def global_quantile_search_space(trial) -> dict:
    """The quantile level."""
    return {
        **suggest_preprocessor_params(trial, use_quant_features=(True,)),
        "quantile": trial.suggest_float("quantile", 0.5, 0.999),
    }


def max_seen_search_space(trial) -> dict:
    """The margin over the group's largest peak."""
    return {
        **suggest_preprocessor_params(trial, use_quant_features=(True,)),
        "margin": trial.suggest_float("margin", 1.0, 2.0),
    }
