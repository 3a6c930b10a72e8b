"""resource-prediction: memory allocation for CI/CD build and batch jobs, learnt from telemetry."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("resource-prediction")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
