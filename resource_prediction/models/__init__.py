"""Memory predictors: every model answers how many GB to allocate to each job.

All are scikit-learn estimators deriving from :class:`BasePredictor`; the families the project
compares are declared once in :data:`resource_prediction.config.MODEL_FAMILIES`.
"""

from resource_prediction.models.base import (
    PREPROCESSOR_PREFIX,
    BasePredictor,
    business_loss,
    business_scorer,
    suggest_preprocessor_params,
)
from resource_prediction.models.baselines import (
    ConfiguredRequest,
    GlobalQuantile,
    GroupPercentile,
    MaxSeen,
    VerticalPodAutoscaler,
)
from resource_prediction.models.binned import BinnedClassifier, learn_bins
from resource_prediction.models.boosting import (
    LightGBMPolicyRegressor,
    PolicyBoostingRegressor,
    XGBoostPolicyRegressor,
)
from resource_prediction.models.classifiers import (
    LightGBMBinnedClassifier,
    LogisticBinnedClassifier,
    RandomForestBinnedClassifier,
    XGBoostBinnedClassifier,
)
from resource_prediction.models.cost_aware import CostAwareRegressor
from resource_prediction.models.quantile_ensemble import QuantileEnsembleRegressor

__all__ = [
    "PREPROCESSOR_PREFIX",
    "BasePredictor",
    "BinnedClassifier",
    "ConfiguredRequest",
    "CostAwareRegressor",
    "GlobalQuantile",
    "GroupPercentile",
    "LightGBMBinnedClassifier",
    "LightGBMPolicyRegressor",
    "LogisticBinnedClassifier",
    "MaxSeen",
    "PolicyBoostingRegressor",
    "QuantileEnsembleRegressor",
    "RandomForestBinnedClassifier",
    "VerticalPodAutoscaler",
    "XGBoostBinnedClassifier",
    "XGBoostPolicyRegressor",
    "business_loss",
    "business_scorer",
    "learn_bins",
    "suggest_preprocessor_params",
]
