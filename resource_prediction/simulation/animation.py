"""A static plotly animation of the replay, for the book (where widgets have no kernel).

The frames are computed with the same :class:`~resource_prediction.simulation.replay.ReplaySimulation`
as the app: each model predicts every job before it runs and observes it after. Frame ``k`` shows the
first ``k x jobs_per_frame`` jobs (the latest ``window`` of them drawn): the configured request, the
actual peaks, each model's allocation and its under-allocated jobs (crosses at the peak); the legend
carries the running business score of each model and of the configured request. Play and pause buttons and a slider drive the frames in the browser, with no kernel.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from resource_prediction.metrics import DEFAULT_PENALTY, allocation_metrics
from resource_prediction.simulation.catalog import ModelEntry, discover_models, load_entry
from resource_prediction.simulation.replay import ReplaySimulation, load_simulation_jobs

__all__ = ["animation_for_artifacts", "default_entries", "replay_animation", "replay_models"]

log = logging.getLogger(__name__)

#: One colour per model (plotly's qualitative palette without the request's grey).
MODEL_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
MODEL_SYMBOLS = ("circle-open", "diamond-open", "square-open", "triangle-up-open", "star-open")


def replay_models(
    models: Mapping[str, Any], jobs: pd.DataFrame, *, n_jobs: int | None = None,
    penalty: float = DEFAULT_PENALTY,
) -> dict[str, ReplaySimulation]:
    """Replay the first ``n_jobs`` jobs (all when None) through each model; one finished replay each.

    Uses :meth:`ReplaySimulation.run` with ``causal_batch=True`` (the allocations of job-by-job
    steps, computed in one call per model).
    """
    subset = jobs.sort_values("time", kind="stable").iloc[: n_jobs or len(jobs)]
    out = {}
    for name, model in models.items():
        sim = ReplaySimulation(subset, penalty=penalty)
        sim.set_model(name, model)
        sim.run(causal_batch=True)
        out[name] = sim
    return out


def _legend(name: str, alloc: np.ndarray, peak: np.ndarray, penalty: float) -> str:
    m = allocation_metrics(alloc, peak, penalty=penalty)
    return f"{name}: score {m['business_score']:.1f} (under {m['under_pct']:.1f} %, over {m['total_over_pct']:.0f} %)"


def _frame_traces(
    x: np.ndarray, peak: np.ndarray, request: np.ndarray, allocs: Mapping[str, np.ndarray],
    stop: int, window: int, penalty: float,
) -> list[go.Scatter]:
    """The traces of the frame that has replayed ``stop`` jobs: the last ``window`` of them drawn,
    the legend's scores over all ``stop``."""
    lo = max(0, stop - window)
    shown = slice(lo, stop)
    out = []
    has_request = np.isfinite(request[:stop]) & (request[:stop] > 0)
    if has_request.any():
        name = _legend("Configured request", request[:stop][has_request], peak[:stop][has_request], penalty)
        out.append(go.Scatter(x=x[shown], y=request[shown], name=name, mode="markers",
                              marker=dict(color="#9e9e9e", symbol="line-ew-open", size=10,
                                          line=dict(width=2, color="#9e9e9e"))))
    out.append(go.Scatter(x=x[shown], y=peak[shown], name="Actual peak", mode="markers",
                          marker=dict(color="#222222", size=5)))
    for i, (name, alloc) in enumerate(allocs.items()):
        color = MODEL_COLORS[i % len(MODEL_COLORS)]
        a, p = alloc[shown], peak[shown]
        under = a < p
        out.append(go.Scatter(x=x[shown], y=a, name=_legend(name, alloc[:stop], peak[:stop], penalty),
                              mode="markers", legendgroup=name,
                              marker=dict(color=color, size=6, symbol=MODEL_SYMBOLS[i % len(MODEL_SYMBOLS)],
                                          line=dict(width=1.5, color=color))))
        out.append(go.Scatter(x=x[shown][under], y=p[under], name=f"{name}: under-allocated",
                              legendgroup=name, showlegend=False, mode="markers",
                              marker=dict(color=color, size=11, symbol="x-thin", line=dict(width=2.5, color=color))))
    return out


def _controls(stops: list[int], frame_ms: int) -> dict:
    """Play and pause buttons and a slider over the frames."""
    steps = [
        dict(method="animate", label=f"{s:,}",
             args=[[str(s)], dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))])
        for s in stops
    ]
    buttons = [
        dict(label="Play", method="animate",
             args=[None, dict(frame=dict(duration=frame_ms, redraw=True), fromcurrent=True,
                              transition=dict(duration=0), mode="immediate")]),
        dict(label="Pause", method="animate",
             args=[[None], dict(frame=dict(duration=0, redraw=False), mode="immediate", transition=dict(duration=0))]),
    ]
    return dict(
        updatemenus=[dict(type="buttons", direction="left", x=0, y=-0.16, xanchor="left", yanchor="top",
                          showactive=False, pad=dict(t=0, r=10), buttons=buttons)],
        sliders=[dict(active=0, steps=steps, x=0.2, len=0.8, y=-0.16, yanchor="top",
                      currentvalue=dict(prefix="jobs replayed: "), pad=dict(t=0, b=0))],
    )


def _log_range(peak: np.ndarray, request: np.ndarray, allocs: Mapping[str, np.ndarray]) -> list[float]:
    """The y range (log10 units) that holds every peak, request and allocation with a margin."""
    finite_request = request[np.isfinite(request) & (request > 0)]
    values = np.concatenate([peak, finite_request, *allocs.values()])
    values = values[values > 0]
    return [np.log10(values.min() / 1.3), np.log10(values.max() * 1.3)]


def replay_animation(
    models: Mapping[str, Any],
    jobs: pd.DataFrame,
    *,
    n_jobs: int = 400,
    jobs_per_frame: int = 20,
    window: int = 100,
    penalty: float = DEFAULT_PENALTY,
    title: str = "Replay of held-out jobs",
    frame_ms: int = 400,
) -> go.Figure:
    """A plotly figure with frames replaying ``jobs`` through ``models`` (name -> DeployableModel).

    The x axis is the job's position in the replay (jobs in time order); each frame draws the latest
    ``window`` jobs, and the legend gives each allocation's running score over every job so far,
    today's configured request included.

    Parameters
    ----------
    models : mapping of str to model
        Deployed models (``predict``/``observe``), e.g. loaded with ``DeployableModel.load``.
    jobs : pandas.DataFrame
        Raw telemetry with peaks (e.g. :func:`~resource_prediction.simulation.replay.load_simulation_jobs`).
    n_jobs : int
        Jobs replayed (the first ones in time).
    jobs_per_frame : int
        Jobs added per frame.
    window : int
        Jobs drawn in a frame (the latest ones).
    penalty : float
        Penalty of the business score in the legend.
    title : str
        Figure title.
    frame_ms : int
        Duration of a frame when playing, milliseconds.
    """
    if not models:
        raise ValueError("the animation needs at least one model")
    if jobs_per_frame < 1 or window < 1:
        raise ValueError(f"jobs_per_frame and window must be at least 1, got {jobs_per_frame}, {window}")
    sims = replay_models(models, jobs, n_jobs=n_jobs, penalty=penalty)
    first = next(iter(sims.values())).history()
    peak, request = first["peak_gb"].to_numpy(), first["request_gb"].to_numpy()
    allocs = {name: sim.history()["allocated_gb"].to_numpy() for name, sim in sims.items()}
    n = len(peak)
    x = np.arange(1, n + 1)
    span = min(window, n)
    # The first frame fills the window; each later one adds jobs_per_frame jobs and slides it.
    stops = list(range(span, n, jobs_per_frame)) + [n]

    def x_range(stop: int) -> list[float]:
        lo = max(0, stop - span)
        return [lo + 0.5, lo + span + 0.5]

    frames = [
        go.Frame(data=_frame_traces(x, peak, request, allocs, s, span, penalty), name=str(s),
                 layout=dict(title_text=f"{title}: {s:,} of {n:,} jobs", xaxis=dict(range=x_range(s))))
        for s in stops
    ]
    y_range = _log_range(peak, request, allocs)
    fig = go.Figure(data=_frame_traces(x, peak, request, allocs, stops[0], span, penalty), frames=frames)
    t0, t1 = first["time"].iloc[0], first["time"].iloc[-1]
    fig.update_layout(
        title=dict(text=f"{title}: {stops[0]:,} of {n:,} jobs", y=0.98, yanchor="top"),
        xaxis=dict(title=f"job in the replay (time order, {t0:%Y-%m-%d %H:%M} to {t1:%Y-%m-%d %H:%M} UTC)",
                   range=x_range(stops[0])),
        yaxis=dict(title="memory (GB, log scale)", type="log", range=y_range, dtick=1),
        **_LAYOUT, **_controls(stops, frame_ms),
    )
    return fig


#: The replay's fixed layout: white template, room above the plot for the legend and below for
#: the controls.
_LAYOUT = dict(
    template="plotly_white", height=680,
    legend=dict(orientation="v", yanchor="bottom", y=1.02, xanchor="left", x=0),
    margin=dict(l=60, r=20, t=190, b=130),
)


#: Exported variants shown next to the champion in the static replay.
ANIMATION_VARIANTS = 2


def _variants(entries: list[ModelEntry]) -> list[ModelEntry]:
    """Exported variants: other app exports first (the cost-aware safe variant), then the QE ones."""
    other = [e for e in entries if e.kind == "other" and e.key.startswith("app/")]
    return other + [e for e in entries if e.kind == "quantile_ensemble"]


def default_entries(entries: list[ModelEntry], n_variants: int = ANIMATION_VARIANTS) -> list[ModelEntry]:
    """The static replay's models: the champion and the first ``n_variants`` exported variants
    (the safe variant, if exported, then the quantile ensemble's); without a champion, the
    classification model instead."""
    lead = [e for e in entries if e.kind == "champion"] or [e for e in entries if e.kind == "classification"]
    return lead[:1] + _variants(entries)[:n_variants]


def _label(entry: ModelEntry, artifacts_dir: str | Path) -> str:
    if entry.kind == "champion":
        return _champion_label(artifacts_dir)
    if entry.kind == "other":  # app/cost_aware/cost_aware_safe -> "Variant cost_aware_safe"
        return f"Variant {Path(entry.key).stem}"
    return entry.label


def _champion_label(artifacts_dir: str | Path) -> str:
    """``Champion (<family>)`` from ``reports/champions.json``, else ``Champion``."""
    try:
        report = json.loads((Path(artifacts_dir) / "reports" / "champions.json").read_text())
        return f"Champion ({report['champions']['overall']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "Champion"


def animation_for_artifacts(
    artifacts_dir: str | Path,
    data_path: str | Path | None = None,
    *,
    n_jobs: int = 400,
    jobs_per_frame: int = 20,
    penalty: float = DEFAULT_PENALTY,
    seed: int = 0,
    holdout_only: bool = True,
    test_fraction: float = 0.10,
) -> go.Figure | None:
    """The animation for the default models of an artifacts directory (None when it has none).

    The jobs are those of :func:`~resource_prediction.simulation.replay.load_simulation_jobs`
    (``data_path``, ``holdout_only``, ``test_fraction``, ``seed``); the other parameters are
    :func:`replay_animation`'s. Models that cannot be loaded are left out with a warning in the log.
    """
    models = {}
    entries = discover_models(artifacts_dir)
    chosen = default_entries(entries)
    spare = [e for e in _variants(entries) if e not in chosen]
    for entry in chosen + spare:
        if len(models) == 1 + ANIMATION_VARIANTS:
            break
        label = _label(entry, artifacts_dir)
        try:
            models[label] = load_entry(entry)
        except Exception as exc:  # a broken artifact must not stop the book
            log.warning("animation: leaving out %s: %s: %s", entry.path, type(exc).__name__, exc)
    if not models:
        return None
    jobs = load_simulation_jobs(
        data_path, artifacts_dir, holdout_only=holdout_only, test_fraction=test_fraction, seed=seed
    )
    return replay_animation(models, jobs, n_jobs=n_jobs, jobs_per_frame=jobs_per_frame, penalty=penalty)
