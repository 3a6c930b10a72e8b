"""Classification over memory bins: predict the bin, allocate its upper edge.

The one binned-classification implementation. Bins are learnt from the training peaks with
:class:`sklearn.preprocessing.KBinsDiscretizer` (``uniform``, ``quantile`` or ``kmeans``; by default
on ``log(peak)``, so ``uniform`` bins are geometric in GB); degenerate bins are dropped, so
``n_bins_`` can be below ``n_bins``.

Allocation rule
---------------
* the predicted bin is the most probable one (``decision="argmax"``, the default) or the one whose
  upper edge minimises the expected business cost under the predicted bin probabilities
  (``decision="expected_cost"``: ``unit_cost x P(peak above the edge) + E[(edge - peak)+]``, with
  ``unit_cost = penalty x recent mean training peak`` and each bin's peaks at their training mean);
* the allocation is the upper edge of the predicted bin;
* a job whose top class probability is below ``confidence_threshold`` is moved up one bin;
* the top bin's upper edge is the largest training peak times ``top_margin`` (never infinite);
* bins that hold no training job (possible with ``uniform``/``kmeans``) get probability 0: they
  are never predicted but can be reached by the move-up rule.

The classifier is a parameter (``classifier=``, any scikit-learn classifier; its parameters are
``classifier__<param>``, as the quantile ensemble's members' are): the binned families of the
registry are this one class over the classifiers of :mod:`resource_prediction.models.classifiers`.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import KBinsDiscretizer
from sklearn.utils.validation import check_is_fitted

from resource_prediction.allocation import unit_failure_cost
from resource_prediction.metrics import DEFAULT_PENALTY
from resource_prediction.models.adapters import (
    adapter_for,
    fit_with_categoricals,
    predict_proba_fast,
    with_shared_params,
)
from resource_prediction.models.base import (
    BasePredictor,
    limit_threads,
    suggest_preprocessor_params,
)

__all__ = ["DECISIONS", "STRATEGIES", "BinnedClassifier", "binned_search_space", "learn_bins"]

STRATEGIES = ("uniform", "quantile", "kmeans")
DECISIONS = ("argmax", "expected_cost")


def learn_bins(
    y: np.ndarray,
    n_bins: int,
    strategy: str = "quantile",
    top_margin: float = 1.2,
    log_scale: bool = True,
    random_state: int | None = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Bin edges (GB) and each peak's bin index, learnt from peaks ``y``.

    The first edge is the smallest peak, the last one the largest peak times ``top_margin``.

    Examples
    --------
    >>> edges, codes = learn_bins(np.array([1.0, 1.1, 4.0, 4.2, 16.0, 17.0]), 3, top_margin=1.0)
    >>> edges.size - 1, codes.tolist(), float(edges[-1])
    (3, [0, 0, 1, 1, 2, 2], 17.0)
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    y = np.asarray(y, dtype=np.float64)
    values = np.log(y) if log_scale else y
    n = min(int(n_bins), np.unique(values).size)
    if n < 2:
        codes = np.zeros(y.size, dtype=np.int64)
        return np.array([y.min(), y.max() * top_margin]), codes
    kbd = KBinsDiscretizer(
        n_bins=n, encode="ordinal", strategy=strategy, subsample=None, random_state=random_state
    )
    with warnings.catch_warnings():
        # Degenerate bins being dropped (and k-means finding fewer distinct clusters) is expected
        # and reflected in n_bins_.
        warnings.filterwarnings("ignore", category=UserWarning, module="sklearn")
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        codes = kbd.fit_transform(values[:, None])[:, 0].astype(np.int64)
    inner = kbd.bin_edges_[0][1:-1]
    edges = np.concatenate([[y.min()], np.exp(inner) if log_scale else inner, [y.max() * top_margin]])
    return edges, codes


class BinnedClassifier(BasePredictor):
    """Classifier of the memory bin; see the module docstring for the allocation rule.

    Parameters
    ----------
    classifier : classifier, optional
        Predicts the bin; cloned before fitting, its parameters are ``classifier__<param>``. Its
        library's adapter (:mod:`~resource_prediction.models.adapters`) says how it takes
        categorical columns and which encoding it wants (``preferred_encoding``). Default:
        :class:`sklearn.ensemble.HistGradientBoostingClassifier`.
    n_bins : int
        Requested bins, at least 2 (degenerate ones are dropped).
    strategy : {"uniform", "quantile", "kmeans"}
    confidence_threshold : float
        Move up one bin below this top probability.
    top_margin : float
        Top edge = largest training peak times this.
    log_scale : bool
        Bin ``log(peak)``.
    decision : {"argmax", "expected_cost"}
    penalty : float
        The business score's penalty (for ``expected_cost``).
    random_state : int or None
        Seed of the binning, given to the classifier when its library takes one.
    n_jobs : int or None
        Threads: given to the classifier when its library takes them, and the cap of the
        OpenMP/BLAS pools while fitting (None: no cap).

    Attributes
    ----------
    bin_edges_ : ndarray of shape ``(n_bins_ + 1,)``
        Edges in GB; bin ``i`` is ``[bin_edges_[i], bin_edges_[i + 1])``.
    n_bins_ : int
        Bins kept after dropping degenerate ones.
    seen_bins_ : ndarray of int
        Bins that hold at least one training job (the classifier's classes).
    bin_means_ : ndarray of shape ``(n_bins_,)``
        Mean training peak per bin (the middle of the bin when it is empty).
    classifier_ : estimator or None
        The fitted classifier (None when all training jobs fall in one bin).

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 2)); y = np.exp(X[:, 0] + 0.1 * rng.normal(size=300))
    >>> model = BinnedClassifier(LogisticRegression(C=0.5), n_bins=4).fit(X, y)
    >>> model.preferred_encoding, model.get_params()["classifier__C"], model.n_bins_
    ('onehot', 0.5, 4)
    """

    def __init__(
        self,
        classifier=None,
        n_bins: int = 15,
        strategy: str = "kmeans",
        confidence_threshold: float = 0.5,
        top_margin: float = 1.2,
        log_scale: bool = True,
        decision: str = "argmax",
        penalty: float = DEFAULT_PENALTY,
        random_state: int | None = 0,
        n_jobs: int | None = 1,
    ):
        self.classifier = classifier
        self.n_bins = n_bins
        self.strategy = strategy
        self.confidence_threshold = confidence_threshold
        self.top_margin = top_margin
        self.log_scale = log_scale
        self.decision = decision
        self.penalty = penalty
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _classifier(self):
        return HistGradientBoostingClassifier() if self.classifier is None else self.classifier

    @property
    def preferred_encoding(self) -> str:
        """The feature encoding the classifier's library wants (``"onehot"`` for linear models)."""
        return adapter_for(self._classifier()).encoding

    def fit(self, X, y):
        """Learn the bins from ``y``, then a classifier of the bin from ``X``."""
        Xa, y = self._validate_fit(X, y)
        if int(self.n_bins) < 2:
            raise ValueError(f"n_bins must be at least 2, got {self.n_bins}")
        if not 0.0 <= self.confidence_threshold <= 1.0:
            raise ValueError(f"confidence_threshold must be in [0, 1], got {self.confidence_threshold}")
        if self.top_margin < 1.0:
            raise ValueError(f"top_margin must be >= 1, got {self.top_margin}")
        if self.decision not in DECISIONS:
            raise ValueError(f"decision must be one of {DECISIONS}, got {self.decision!r}")
        if self.penalty <= 0:
            raise ValueError(f"penalty must be positive, got {self.penalty}")
        with limit_threads(self.n_jobs):  # k-means and BLAS pools
            return self._fit_bins_and_classifier(Xa, y)

    def _fit_bins_and_classifier(self, Xa: np.ndarray, y: np.ndarray):
        self.bin_edges_, codes = learn_bins(
            y, self.n_bins, self.strategy, self.top_margin, self.log_scale, self.random_state
        )
        self.n_bins_ = self.bin_edges_.size - 1
        self.seen_bins_ = np.unique(codes)
        sums = np.bincount(codes, weights=y, minlength=self.n_bins_)
        counts = np.bincount(codes, minlength=self.n_bins_)
        middles = 0.5 * (self.bin_edges_[:-1] + self.bin_edges_[1:])
        self.bin_means_ = np.where(counts > 0, sums / np.maximum(counts, 1), middles)
        if self.seen_bins_.size < 2:
            self.classifier_ = None
            return self
        labels = np.searchsorted(self.seen_bins_, codes)
        classifier = with_shared_params(
            clone(self._classifier()), random_state=self.random_state, n_jobs=self.n_jobs
        )
        self.classifier_ = fit_with_categoricals(
            classifier, Xa, labels, self.categorical_mask_, self._category_counts()
        )
        return self

    # ------------------------------------------------------------------ decisions
    def _proba(self, Xa: np.ndarray) -> np.ndarray:
        proba = np.zeros((Xa.shape[0], self.n_bins_))
        if self.classifier_ is None:
            proba[:, self.seen_bins_[0]] = 1.0
        else:
            proba[:, self.seen_bins_] = predict_proba_fast(self.classifier_, Xa)
        return proba

    def _decide(self, Xa: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Predicted bin, its probability, and the allocated bin (after the move-up rule)."""
        proba = self._proba(Xa)
        predicted = _DECIDE[self.decision](self, proba)
        confidence = proba.max(axis=1)
        moved = confidence < self.confidence_threshold
        allocated = np.minimum(predicted + moved, self.n_bins_ - 1)
        return predicted, confidence, allocated

    def _predict(self, Xa: np.ndarray) -> np.ndarray:
        return self.bin_edges_[self._decide(Xa)[2] + 1]

    def _expected_cost_bin(self, proba: np.ndarray) -> np.ndarray:
        """Bin whose upper edge minimises ``unit_cost P(Y > edge) + E[(edge - Y)+]``."""
        cum = np.cumsum(proba, axis=1)
        partial = np.cumsum(proba * self.bin_means_, axis=1)
        upper = self.bin_edges_[1:]
        unit_cost = unit_failure_cost(self.peak_unit_gb(), self.penalty)  # read at predict time
        cost = unit_cost * (1.0 - cum) + cum * upper - partial
        return cost.argmin(axis=1)

    def predict_proba(self, X) -> np.ndarray:
        """Probability of each of the ``n_bins_`` bins, shape ``(n_jobs, n_bins_)``."""
        check_is_fitted(self)
        return self._proba(self._validate_X(X, reset=False))

    def predict_bin(self, X, apply_confidence_rule: bool = True) -> np.ndarray:
        """The bin each job is allocated (``False``: the most probable bin, before moving up)."""
        check_is_fitted(self)
        predicted, _, allocated = self._decide(self._validate_X(X, reset=False))
        return allocated if apply_confidence_rule else predicted

    def explain(self, X) -> pd.DataFrame:
        """Per job: allocation, predicted bin, top probability, allocated bin and its edges."""
        check_is_fitted(self)
        predicted, confidence, allocated = self._decide(self._validate_X(X, reset=False))
        return pd.DataFrame(
            {
                "allocation_gb": self._as_allocation(self.bin_edges_[allocated + 1]),
                "predicted_bin": predicted,
                "confidence": confidence,
                "moved_up": allocated != predicted,
                "bin": allocated,
                "bin_lower_gb": self.bin_edges_[allocated],
                "bin_upper_gb": self.bin_edges_[allocated + 1],
            }
        )


#: How each ``decision`` picks the predicted bin from the bin probabilities.
_DECIDE = {
    "argmax": lambda model, proba: proba.argmax(axis=1),
    "expected_cost": BinnedClassifier._expected_cost_bin,
}


def binned_search_space(trial) -> dict:
    """The binning part shared by every binned classifier's search space."""
    return {
        **suggest_preprocessor_params(trial),
        "n_bins": trial.suggest_int("n_bins", 3, 15),
        "strategy": trial.suggest_categorical("strategy", list(STRATEGIES)),
        "confidence_threshold": trial.suggest_float("confidence_threshold", 0.0, 0.9),
        "top_margin": trial.suggest_float("top_margin", 1.0, 1.5),
        "decision": trial.suggest_categorical("decision", list(DECISIONS)),
    }
