"""The binned classifiers: one small class per classifier library, binning shared.

Every class takes the binning and decision parameters of :class:`~resource_prediction.models.binned.
BinnedClassifier` (``n_bins``, ``strategy``, ``confidence_threshold``, ``top_margin``,
``log_scale``, ``decision``, ``penalty``, ``random_state``) followed by its classifier's own
parameters.
"""

from __future__ import annotations

import warnings

import numpy as np
from lightgbm import LGBMClassifier
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from xgboost import XGBClassifier

from resource_prediction.metrics import DEFAULT_PENALTY
from resource_prediction.models.binned import BinnedClassifier, binned_search_space

__all__ = [
    "LightGBMBinnedClassifier",
    "LogisticBinnedClassifier",
    "RandomForestBinnedClassifier",
    "XGBoostBinnedClassifier",
    "lightgbm_search_space",
    "logistic_search_space",
    "random_forest_search_space",
    "xgboost_search_space",
]


class XGBoostBinnedClassifier(BinnedClassifier):
    """Memory bin predicted by an XGBoost classifier.

    Parameters
    ----------
    n_bins, strategy, confidence_threshold, top_margin, log_scale, decision, penalty, \
random_state :
        Binning and decision (see :class:`~resource_prediction.models.binned.BinnedClassifier`).
    n_estimators, learning_rate, max_depth, min_child_weight, subsample, colsample_bytree :
        See :class:`xgboost.XGBClassifier`.
    multi_strategy : {"multi_output_tree", "one_output_per_tree"}
        ``multi_output_tree`` (default) grows one tree per round whose leaves hold a score for
        every bin: prediction walks ``n_estimators`` trees instead of ``n_estimators * n_bins``
        (the batch throughput target). XGBoost has no categorical splits in such trees, so the
        categorical features enter as their integer codes. ``one_output_per_tree`` is the classic
        tree per class and round, with categorical splits.
    max_bin : int
        Histogram bins per feature (XGBoost's default is 256; 64 fits about twice as fast here and
        scores the same).
    n_jobs : int
    """

    def __init__(
        self,
        n_bins: int = 15,
        strategy: str = "kmeans",
        confidence_threshold: float = 0.5,
        top_margin: float = 1.2,
        log_scale: bool = True,
        decision: str = "argmax",
        penalty: float = DEFAULT_PENALTY,
        n_estimators: int = 100,
        learning_rate: float = 0.1,
        max_depth: int = 6,
        min_child_weight: float = 1.0,
        subsample: float = 0.9,
        colsample_bytree: float = 1.0,
        multi_strategy: str = "multi_output_tree",
        max_bin: int = 64,
        random_state: int = 0,
        n_jobs: int = 1,
    ):
        self.n_bins = n_bins
        self.strategy = strategy
        self.confidence_threshold = confidence_threshold
        self.top_margin = top_margin
        self.log_scale = log_scale
        self.decision = decision
        self.penalty = penalty
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_child_weight = min_child_weight
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.multi_strategy = multi_strategy
        self.max_bin = max_bin
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _make_classifier(self):
        return XGBClassifier(
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            max_depth=self.max_depth,
            min_child_weight=self.min_child_weight,
            subsample=self.subsample,
            colsample_bytree=self.colsample_bytree,
            multi_strategy=self.multi_strategy,
            tree_method="hist",
            max_bin=self.max_bin,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
        )


class LightGBMBinnedClassifier(BinnedClassifier):
    """Memory bin predicted by a LightGBM classifier.

    Parameters
    ----------
    n_bins, strategy, confidence_threshold, top_margin, log_scale, decision, penalty, \
random_state :
        Binning and decision (see :class:`~resource_prediction.models.binned.BinnedClassifier`).
    n_estimators, learning_rate, num_leaves, min_child_samples, subsample, colsample_bytree :
        See :class:`lightgbm.LGBMClassifier`. LightGBM grows one tree per bin and round, so the
        defaults are few rounds of small trees (``15 * n_bins`` trees of 7 leaves) to keep batch
        prediction at the throughput target. The price on the default data: a holdout score of 167
        where 150 rounds of 31 leaves scored 153. The search stays in this size range (10-40
        rounds of 4-15 leaves) and tunes the rest.
    reg_lambda : float
        L2 penalty on leaf values. LightGBM's default (0) lets a leaf of a rare bin, where the
        softmax hessian is tiny, take a huge value at this learning rate: on small real traces
        the probabilities saturate at 1 on the wrong bin (holdout scores of 427 and 1872 on two
        Nextflow traces, where 5.0 gives 113 and 152).
    n_jobs : int
    """

    def __init__(
        self,
        n_bins: int = 15,
        strategy: str = "kmeans",
        confidence_threshold: float = 0.5,
        top_margin: float = 1.2,
        log_scale: bool = True,
        decision: str = "argmax",
        penalty: float = DEFAULT_PENALTY,
        n_estimators: int = 15,
        learning_rate: float = 0.4,
        num_leaves: int = 7,
        min_child_samples: int = 20,
        subsample: float = 0.9,
        colsample_bytree: float = 1.0,
        reg_lambda: float = 5.0,
        random_state: int = 0,
        n_jobs: int = 1,
    ):
        self.n_bins = n_bins
        self.strategy = strategy
        self.confidence_threshold = confidence_threshold
        self.top_margin = top_margin
        self.log_scale = log_scale
        self.decision = decision
        self.penalty = penalty
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _make_classifier(self):
        return LGBMClassifier(
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples,
            reg_lambda=self.reg_lambda,
            subsample=self.subsample,
            subsample_freq=1 if self.subsample < 1.0 else 0,
            colsample_bytree=self.colsample_bytree,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
            verbose=-1,
        )


class RandomForestBinnedClassifier(BinnedClassifier):
    """Memory bin predicted by a random forest.

    Parameters
    ----------
    n_bins, strategy, confidence_threshold, top_margin, log_scale, decision, penalty, \
random_state :
        Binning and decision (see :class:`~resource_prediction.models.binned.BinnedClassifier`).
    n_estimators, max_depth, min_samples_leaf, max_features, max_samples :
        See :class:`sklearn.ensemble.RandomForestClassifier` (``max_samples``: share of the jobs
        each tree's bootstrap sample draws; smaller is faster).
    n_jobs : int
    """

    def __init__(
        self,
        n_bins: int = 15,
        strategy: str = "kmeans",
        confidence_threshold: float = 0.5,
        top_margin: float = 1.2,
        log_scale: bool = True,
        decision: str = "argmax",
        penalty: float = DEFAULT_PENALTY,
        n_estimators: int = 60,
        max_depth: int | None = None,
        min_samples_leaf: int = 5,
        max_features: float | str = 0.3,
        max_samples: float | None = 0.25,
        random_state: int = 0,
        n_jobs: int = 1,
    ):
        self.n_bins = n_bins
        self.strategy = strategy
        self.confidence_threshold = confidence_threshold
        self.top_margin = top_margin
        self.log_scale = log_scale
        self.decision = decision
        self.penalty = penalty
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.max_samples = max_samples
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _make_classifier(self):
        return RandomForestClassifier(
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf,
            max_features=self.max_features,
            max_samples=self.max_samples,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
        )


class LogisticBinnedClassifier(BinnedClassifier):
    """Memory bin predicted by a multinomial logistic regression.

    It asks the preprocessor for one-hot encoded, standardised features
    (``preferred_encoding = "onehot"``; :class:`~resource_prediction.deployable.DeployableModel`
    passes it on). Given category columns anyway, it one-hot encodes them itself; numeric columns
    are median-imputed and standardised.

    Parameters
    ----------
    n_bins, strategy, confidence_threshold, top_margin, log_scale, decision, penalty, \
random_state :
        Binning and decision (see :class:`~resource_prediction.models.binned.BinnedClassifier`).
    C : float
        Inverse regularisation strength.
    max_iter : int
        Solver iterations. Stopping early regularises too (on the default data 150 iterations
        score better than 500); reaching the limit is recorded in ``converged_``, not warned.
    max_categories : int
        Most frequent categories kept per categorical column (the rest grouped).
    n_jobs : int or None
        Cap of the BLAS/OpenMP thread pools while fitting (None: no cap).

    Attributes
    ----------
    n_iter_ : int
        Iterations of the logistic regression's solver.
    converged_ : bool
        Whether the solver converged within ``max_iter``.
    """

    preferred_encoding = "onehot"

    def __init__(
        self,
        n_bins: int = 15,
        strategy: str = "kmeans",
        confidence_threshold: float = 0.5,
        top_margin: float = 1.2,
        log_scale: bool = True,
        decision: str = "argmax",
        penalty: float = DEFAULT_PENALTY,
        C: float = 1.0,
        max_iter: int = 150,
        max_categories: int = 50,
        random_state: int = 0,
        n_jobs: int | None = 1,
    ):
        self.n_bins = n_bins
        self.strategy = strategy
        self.confidence_threshold = confidence_threshold
        self.top_margin = top_margin
        self.log_scale = log_scale
        self.decision = decision
        self.penalty = penalty
        self.C = C
        self.max_iter = max_iter
        self.max_categories = max_categories
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(self, X, y):
        """Learn the bins, then the logistic regression; ``n_iter_`` is its solver's iterations."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            super().fit(X, y)
        self.n_iter_ = (
            int(np.max(self.classifier_[-1].n_iter_)) if self.classifier_ is not None else 0
        )
        self.converged_ = self.n_iter_ < self.max_iter
        return self

    def _make_classifier(self):
        mask = self.categorical_mask_
        numeric = make_pipeline(
            SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()
        )
        categorical = make_pipeline(
            SimpleImputer(strategy="constant", fill_value=-1.0, keep_empty_features=True),
            OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=self.max_categories),
        )
        features = ColumnTransformer(
            [("num", numeric, np.flatnonzero(~mask)), ("cat", categorical, np.flatnonzero(mask))]
        )
        return make_pipeline(
            features, LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=self.random_state)
        )


def xgboost_search_space(trial) -> dict:
    """Optuna search space of :class:`XGBoostBinnedClassifier`."""
    return {
        **binned_search_space(trial),
        "n_estimators": trial.suggest_int("n_estimators", 30, 120, step=10),
        "learning_rate": trial.suggest_float("learning_rate", 0.05, 0.4, log=True),
        "max_depth": trial.suggest_int("max_depth", 3, 6),
        "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 50.0, log=True),
    }


def lightgbm_search_space(trial) -> dict:
    """Optuna search space of :class:`LightGBMBinnedClassifier`."""
    return {
        **binned_search_space(trial),
        "n_estimators": trial.suggest_int("n_estimators", 10, 40, step=5),
        "learning_rate": trial.suggest_float("learning_rate", 0.1, 0.5, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 4, 15),
        "min_child_samples": trial.suggest_int("min_child_samples", 5, 100, log=True),
        "reg_lambda": trial.suggest_float("reg_lambda", 0.5, 20.0, log=True),
    }


def random_forest_search_space(trial) -> dict:
    """Optuna search space of :class:`RandomForestBinnedClassifier`."""
    return {
        **binned_search_space(trial),
        "n_estimators": trial.suggest_int("n_estimators", 20, 80, step=20),
        "min_samples_leaf": trial.suggest_int("min_samples_leaf", 5, 50, log=True),
        "max_features": trial.suggest_float("max_features", 0.2, 0.5),
        "max_samples": trial.suggest_float("max_samples", 0.1, 0.5),
    }


def logistic_search_space(trial) -> dict:
    """Optuna search space of :class:`LogisticBinnedClassifier`."""
    return {
        **binned_search_space(trial),
        "C": trial.suggest_float("C", 1e-3, 1e2, log=True),
    }
