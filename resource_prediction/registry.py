"""The model registry: every model family declared once.

(``resource_prediction.config`` re-exports it: the import path the project we descend from documents.)

:data:`MODEL_FAMILIES` maps a family name to a :class:`ModelFamily`: its task type, estimator (a
prototype the family clones: the composed models are one class over different members),
Optuna search space (a define-by-run function living next to the model it describes) and a
description. Search, training, evaluation, the CLI and the notebooks iterate over the registry, so
a family added with :func:`register_family` is picked up everywhere with no other change.

Parameters of a family are one flat dict: keys starting with :data:`PREPROCESSOR_PREFIX`
(``"pre__"``) go to the :class:`~resource_prediction.preprocessing.ModelPreprocessor`, the others to
the estimator (see :func:`split_params`).

Examples
--------
>>> sorted(families("baseline"))
['configured_request', 'global_quantile', 'group_percentile', 'max_seen', 'vpa']
>>> import optuna
>>> params = get_family("global_quantile").search_space(optuna.trial.FixedTrial(
...     {"pre__use_quant_features": True, "quantile": 0.9}))
>>> split_params(params)
({'quantile': 0.9}, {'use_quant_features': True})
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sklearn.base import clone

from resource_prediction.models import base as _base
from resource_prediction.models import baselines, boosting, classifiers, cost_aware
from resource_prediction.models import quantile_ensemble as qe

__all__ = [
    "MODEL_FAMILIES",
    "PREPROCESSOR_PREFIX",
    "SEARCH_TASK_TYPES",
    "TASK_TYPES",
    "ModelFamily",
    "families",
    "get_family",
    "register_family",
    "split_params",
    "unregister_family",
]

#: What a family is for: the task types the search and the evaluation select families by.
TASK_TYPES: tuple[str, ...] = ("regression", "classification", "baseline")
#: The task types whose families are searched and compete for champion (baselines are references).
SEARCH_TASK_TYPES: tuple[str, ...] = TASK_TYPES[:2]
PREPROCESSOR_PREFIX = _base.PREPROCESSOR_PREFIX


def split_params(params: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a family's parameters into ``(model params, preprocessor params)``.

    Preprocessor keys lose their ``pre__`` prefix.
    """
    model, pre = {}, {}
    for key, value in (params or {}).items():
        if key.startswith(PREPROCESSOR_PREFIX):
            pre[key[len(PREPROCESSOR_PREFIX):]] = value
        else:
            model[key] = value
    return model, pre


@dataclass(frozen=True)
class ModelFamily:
    """One model family of the registry.

    Parameters
    ----------
    name : str
        Registry key.
    task_type : {"regression", "classification", "baseline"}
    estimator : BasePredictor or type
        The family's prototype: a :class:`~resource_prediction.models.BasePredictor` (cloned for
        every fit, never fitted itself), or its class (built with its defaults).
    search_space : callable(trial) -> dict
        Optuna define-by-run search space returning constructor parameters (nested ones as
        ``<member>__<param>``, plus ``pre__`` preprocessor parameters).
    description : str
    """

    name: str
    task_type: str
    estimator: Any
    search_space: Callable[[Any], dict[str, Any]]
    description: str

    def __post_init__(self):
        if not self.name:
            raise ValueError("a model family needs a name")
        if self.task_type not in TASK_TYPES:
            raise ValueError(f"task_type must be one of {TASK_TYPES}, got {self.task_type!r}")
        if not callable(self.search_space):
            raise TypeError(f"search_space of {self.name!r} must be callable(trial) -> dict")
        if isinstance(self.estimator, type):
            object.__setattr__(self, "estimator", self.estimator())

    @property
    def estimator_class(self) -> type:
        """The class of the family's estimator."""
        return type(self.estimator)

    @property
    def preferred_encoding(self) -> str:
        """The preprocessor encoding the family's estimator wants (``"category"`` or ``"onehot"``)."""
        return getattr(self.estimator, "preferred_encoding", "category")

    def make_estimator(
        self,
        params: Mapping[str, Any] | None = None,
        *,
        penalty: float | None = None,
        random_state: int | None = None,
    ):
        """A new estimator with the model part of ``params`` (preprocessor keys are ignored).

        ``penalty`` and ``random_state`` are set when the estimator has such a parameter and
        ``params`` does not give it.
        """
        model_params, _ = split_params(params)
        estimator = clone(self.estimator)
        accepted = estimator.get_params(deep=False)
        for key, value in (("penalty", penalty), ("random_state", random_state)):
            if value is not None and key in accepted and key not in model_params:
                model_params[key] = value
        return estimator.set_params(**model_params)


MODEL_FAMILIES: dict[str, ModelFamily] = {
    f.name: f
    for f in (
        ModelFamily(
            "qe_regression", "regression", qe.QuantileEnsembleRegressor, qe.search_space,
            "Quantile ensemble: largest of gradient-boosting quantile regressors, times a safety factor.",
        ),
        ModelFamily(
            "xgboost_regression", "regression", boosting.XGBOOST, boosting.xgboost_search_space,
            "XGBoost predicting the allocation (quantile objective, or log-peak regression x margin).",
        ),
        ModelFamily(
            "lightgbm_regression", "regression", boosting.LIGHTGBM, boosting.lightgbm_search_space,
            "LightGBM predicting the allocation (quantile objective, or log-peak regression x margin).",
        ),
        ModelFamily(
            "cost_aware_regression", "regression", cost_aware.CostAwareRegressor,
            cost_aware.search_space,
            "Predicted peak distribution per job; allocates the amount minimising the expected score.",
        ),
        ModelFamily(
            "xgboost_classification", "classification", classifiers.XGBOOST,
            classifiers.xgboost_search_space,
            "XGBoost classifier over memory bins; allocates the upper edge of the predicted bin.",
        ),
        ModelFamily(
            "lightgbm_classification", "classification", classifiers.LIGHTGBM,
            classifiers.lightgbm_search_space,
            "LightGBM classifier over memory bins; allocates the upper edge of the predicted bin.",
        ),
        ModelFamily(
            "rf_classification", "classification", classifiers.RANDOM_FOREST,
            classifiers.random_forest_search_space,
            "Random forest over memory bins; allocates the upper edge of the predicted bin.",
        ),
        ModelFamily(
            "lr_classification", "classification", classifiers.LOGISTIC,
            classifiers.logistic_search_space,
            "Logistic regression on one-hot, standardised features over memory bins.",
        ),
        ModelFamily(
            "configured_request", "baseline", baselines.ConfiguredRequest,
            baselines.configured_request_search_space,
            "The configured memory request: what the cluster allocates today.",
        ),
        ModelFamily(
            "group_percentile", "baseline", baselines.GroupPercentile,
            baselines.group_percentile_search_space,
            "95th percentile of the job group's last 5 peaks x margin (VPA-style recommender).",
        ),
        ModelFamily(
            "max_seen", "baseline", baselines.MAX_SEEN, baselines.max_seen_search_space,
            "Largest peak of the job group so far x 1.2, updated online (request while unseen).",
        ),
        ModelFamily(
            "vpa", "baseline", baselines.VPA,
            baselines.configured_request_search_space,
            "Kubernetes VPA: 90th percentile of a decaying histogram of the group's peaks + 15 %.",
        ),
        ModelFamily(
            "global_quantile", "baseline", baselines.GlobalQuantile,
            baselines.global_quantile_search_space,
            "One quantile of all training peaks for every job.",
        ),
    )
}


def get_family(name: str) -> ModelFamily:
    """The family registered under ``name``.

    Raises
    ------
    KeyError
        Unknown name; the message lists the known ones.
    """
    try:
        return MODEL_FAMILIES[name]
    except KeyError:
        known = ", ".join(sorted(MODEL_FAMILIES))
        raise KeyError(f"unknown model family {name!r}; known families: {known}") from None


def families(task_type: str | None = None) -> dict[str, ModelFamily]:
    """Registered families (of one task type), in registration order."""
    if task_type is not None and task_type not in TASK_TYPES:
        raise ValueError(f"task_type must be one of {TASK_TYPES} or None, got {task_type!r}")
    return {n: f for n, f in MODEL_FAMILIES.items() if task_type in (None, f.task_type)}


def register_family(family: ModelFamily, *, replace: bool = False) -> ModelFamily:
    """Add ``family`` to the registry (``replace=True`` to overwrite a name); returns it."""
    if not isinstance(family, ModelFamily):
        raise TypeError(f"expected a ModelFamily, got {type(family).__name__}")
    if family.name in MODEL_FAMILIES and not replace:
        raise ValueError(f"model family {family.name!r} is already registered (pass replace=True)")
    MODEL_FAMILIES[family.name] = family
    return family


def unregister_family(name: str) -> ModelFamily:
    """Remove a family from the registry (tests use it to clean up); returns it."""
    family = get_family(name)
    del MODEL_FAMILIES[name]
    return family
