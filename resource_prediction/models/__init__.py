"""Memory predictors: every model answers how many GB to allocate to each job.

All are scikit-learn estimators deriving from :class:`BasePredictor`; the families the project
compares are declared once in :data:`resource_prediction.registry.MODEL_FAMILIES`.

``from resource_prediction.models import DeployableModel`` (the path the project we descend from
documents) gives :class:`resource_prediction.deployable.DeployableModel`. It sits above the models
(it trains them by family name through the registry), so it is imported on first use, not when
this package loads: the imports still run one way.
"""

from resource_prediction.models.base import (
    PREPROCESSOR_PREFIX,
    BasePredictor,
    NotApplicableError,
    business_loss,
    business_scorer,
    suggest_preprocessor_params,
)
from resource_prediction.models.baselines import (
    ConfiguredRequest,
    GlobalQuantile,
    GroupPercentile,
    HistoryBaseline,
)
from resource_prediction.models.binned import BinnedClassifier, learn_bins
from resource_prediction.models.boosting import PolicyBoostingRegressor
from resource_prediction.models.cost_aware import CostAwareRegressor
from resource_prediction.models.quantile_ensemble import QuantileEnsembleRegressor

__all__ = [
    "PREPROCESSOR_PREFIX",
    "BasePredictor",
    "BinnedClassifier",
    "ConfiguredRequest",
    "CostAwareRegressor",
    "DeployableModel",
    "GlobalQuantile",
    "GroupPercentile",
    "HistoryBaseline",
    "NotApplicableError",
    "PolicyBoostingRegressor",
    "QuantileEnsembleRegressor",
    "business_loss",
    "business_scorer",
    "learn_bins",
    "suggest_preprocessor_params",
]


def __getattr__(name: str):
    if name == "DeployableModel":
        from resource_prediction.deployable import DeployableModel

        return DeployableModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
