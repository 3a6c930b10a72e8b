"""The allocation simulation: replay held-out jobs through a trained model, as a scheduler would.

* :mod:`~resource_prediction.simulation.replay`: :class:`ReplaySimulation`, the plain replay (state,
  counters, model switching; no widgets);
* :mod:`~resource_prediction.simulation.catalog`: the models found in an artifacts directory;
* :mod:`~resource_prediction.simulation.widgets`: :class:`SimulationApp`, the ipywidgets app
  (JupyterLab and Voila, ``make app``);
* :mod:`~resource_prediction.simulation.animation`: the static plotly animation for the book.

``SimulationApp`` and ``replay_animation`` are imported on first use, so the replay works without
ipywidgets.
"""

from resource_prediction.simulation.catalog import (
    ARTIFACTS_ENV,
    ModelEntry,
    discover_models,
    load_entry,
    resolve_artifacts_dir,
)
from resource_prediction.simulation.replay import (
    ReplaySimulation,
    StepResult,
    load_simulation_jobs,
)

__all__ = [
    "ARTIFACTS_ENV",
    "ModelEntry",
    "ReplaySimulation",
    "SimulationApp",
    "StepResult",
    "discover_models",
    "load_entry",
    "load_simulation_jobs",
    "replay_animation",
    "resolve_artifacts_dir",
]


def __getattr__(name: str):
    if name == "SimulationApp":
        from resource_prediction.simulation.widgets import SimulationApp

        return SimulationApp
    if name == "replay_animation":
        from resource_prediction.simulation.animation import replay_animation

        return replay_animation
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
