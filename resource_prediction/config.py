"""The documented import path of the model registry, kept for the project we descend from.

Everything lives in :mod:`resource_prediction.registry`; ``resource_prediction.config.MODEL_FAMILIES``
is the same dict object, so families registered through either name are seen by both.
"""

from resource_prediction.registry import (
    MODEL_FAMILIES,
    PREPROCESSOR_PREFIX,
    SEARCH_TASK_TYPES,
    TASK_TYPES,
    ModelFamily,
    families,
    get_family,
    register_family,
    split_params,
    unregister_family,
)

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
