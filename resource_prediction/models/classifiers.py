"""The binned families: one :class:`~resource_prediction.models.binned.BinnedClassifier` per classifier.

Each family is the binned classifier over one library's classifier, configured here with the
reasons for its defaults, plus its Optuna search space: the binning keys of
:func:`~resource_prediction.models.binned.binned_search_space` and the classifier's own as
``classifier__<param>``. The registry (:mod:`resource_prediction.registry`) clones these
prototypes; they are never fitted.
"""

from __future__ import annotations

from lightgbm import LGBMClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from xgboost import XGBClassifier

from resource_prediction.models.binned import BinnedClassifier, binned_search_space

__all__ = [
    "LIGHTGBM",
    "LOGISTIC",
    "RANDOM_FOREST",
    "XGBOOST",
    "lightgbm_search_space",
    "logistic_search_space",
    "random_forest_search_space",
    "xgboost_search_space",
]

#: XGBoost. ``multi_strategy="multi_output_tree"`` grows one tree per round whose leaves hold a
#: score for every bin: prediction walks ``n_estimators`` trees instead of ``n_estimators * n_bins``
#: (the batch throughput target). XGBoost has no categorical splits in such trees, so the
#: categorical features enter as their integer codes (``"one_output_per_tree"`` is the classic tree
#: per class and round, with categorical splits). ``max_bin=64`` histogram bins per feature fit
#: about twice as fast as XGBoost's 256 here and score the same.
XGBOOST = BinnedClassifier(
    XGBClassifier(
        n_estimators=100, learning_rate=0.1, max_depth=6, min_child_weight=1.0, subsample=0.9,
        colsample_bytree=1.0, multi_strategy="multi_output_tree", tree_method="hist", max_bin=64,
    )
)

#: LightGBM. It grows one tree per bin and round, so the defaults are few rounds of small trees
#: (``15 * n_bins`` trees of 7 leaves) to keep batch prediction at the throughput target. The price
#: on the default data: a holdout score of 167 where 150 rounds of 31 leaves scored 153; the search
#: stays in this size range (10-40 rounds of 4-15 leaves) and tunes the rest. ``reg_lambda=5``: with
#: LightGBM's default (0) a leaf of a rare bin, where the softmax hessian is tiny, takes a huge value
#: at this learning rate and on small real traces the probabilities saturate at 1 on the wrong bin
#: (holdout scores of 427 and 1872 on two Nextflow traces, where 5.0 gives 113 and 152).
LIGHTGBM = BinnedClassifier(
    LGBMClassifier(
        n_estimators=15, learning_rate=0.4, num_leaves=7, min_child_samples=20, reg_lambda=5.0,
        subsample=0.9, subsample_freq=1, colsample_bytree=1.0, verbose=-1,
    )
)

#: Random forest; ``max_samples`` is the share of the jobs each tree's bootstrap sample draws
#: (smaller is faster).
RANDOM_FOREST = BinnedClassifier(
    RandomForestClassifier(n_estimators=60, min_samples_leaf=5, max_features=0.3, max_samples=0.25)
)

#: Multinomial logistic regression on one-hot, standardised features (its adapter asks the
#: preprocessor for one-hot columns and encodes category columns given anyway). Stopping early
#: regularises too: on the default data 150 iterations score better than 500.
LOGISTIC = BinnedClassifier(LogisticRegression(C=1.0, max_iter=150))


def xgboost_search_space(trial) -> dict:
    """Optuna search space of :data:`XGBOOST`."""
    return {
        **binned_search_space(trial),
        "classifier__n_estimators": trial.suggest_int("classifier__n_estimators", 30, 120, step=10),
        "classifier__learning_rate": trial.suggest_float("classifier__learning_rate", 0.05, 0.4, log=True),
        "classifier__max_depth": trial.suggest_int("classifier__max_depth", 3, 6),
        "classifier__min_child_weight": trial.suggest_float(
            "classifier__min_child_weight", 1.0, 50.0, log=True
        ),
    }


def lightgbm_search_space(trial) -> dict:
    """Optuna search space of :data:`LIGHTGBM`."""
    return {
        **binned_search_space(trial),
        "classifier__n_estimators": trial.suggest_int("classifier__n_estimators", 10, 40, step=5),
        "classifier__learning_rate": trial.suggest_float("classifier__learning_rate", 0.1, 0.5, log=True),
        "classifier__num_leaves": trial.suggest_int("classifier__num_leaves", 4, 15),
        "classifier__min_child_samples": trial.suggest_int(
            "classifier__min_child_samples", 5, 100, log=True
        ),
        "classifier__reg_lambda": trial.suggest_float("classifier__reg_lambda", 0.5, 20.0, log=True),
    }


def random_forest_search_space(trial) -> dict:
    """Optuna search space of :data:`RANDOM_FOREST`."""
    return {
        **binned_search_space(trial),
        "classifier__n_estimators": trial.suggest_int("classifier__n_estimators", 20, 80, step=20),
        "classifier__min_samples_leaf": trial.suggest_int(
            "classifier__min_samples_leaf", 5, 50, log=True
        ),
        "classifier__max_features": trial.suggest_float("classifier__max_features", 0.2, 0.5),
        "classifier__max_samples": trial.suggest_float("classifier__max_samples", 0.1, 0.5),
    }


def logistic_search_space(trial) -> dict:
    """Optuna search space of :data:`LOGISTIC`."""
    return {
        **binned_search_space(trial),
        "classifier__C": trial.suggest_float("classifier__C", 1e-3, 1e2, log=True),
    }
