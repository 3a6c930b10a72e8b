"""Hyper-parameter search, holdout evaluation, champions and the quantile ensemble's Pareto variants.

* :class:`~resource_prediction.training.search.HyperparameterSearcher`: one Optuna study per family;
* :class:`~resource_prediction.training.evaluation.Trainer`: refit, holdout table, champions, export;
* :mod:`~resource_prediction.training.pareto`: the (under %, over %) frontier of the quantile ensemble;
* :mod:`~resource_prediction.training.storage`: where the studies live (SQLite, journal, PostgreSQL).
"""

from resource_prediction.training.evaluation import EvaluationResult, Trainer
from resource_prediction.training.search import FamilyResult, HyperparameterSearcher, search_summary
from resource_prediction.training.storage import open_storage, study_name

__all__ = [
    "EvaluationResult",
    "FamilyResult",
    "HyperparameterSearcher",
    "Trainer",
    "open_storage",
    "search_summary",
    "study_name",
]
