"""The documented import path of the model registry, kept for the project we descend from.

Everything lives in :mod:`resource_prediction.registry`; ``resource_prediction.config.MODEL_FAMILIES``
is the same dict object, so families registered through either name are seen by both.
"""

from resource_prediction import registry as _registry
from resource_prediction.registry import *  # noqa: F403 - the registry's public names, re-exported

__all__ = list(_registry.__all__)
