"""The interactive simulation: ipywidgets controls and a live plotly chart over :class:`ReplaySimulation`.

:class:`SimulationApp` only binds the replay to controls: model radio buttons (from
:func:`~resource_prediction.simulation.catalog.discover_models`), a data path with a load button, play /
pause / step / reset, a delay slider (0 = as fast as possible), the batch size per step, the counters,
a ``plotly.graph_objects.FigureWidget`` of the last ``window`` jobs and a model panel. It runs in
JupyterLab and, served by Voila, as a standalone app (``make app``). Play runs an asyncio task on the
kernel's event loop, so the kernel stays responsive (pause is a click like any other).

Every handler catches its errors and shows them in the app: a broken artifact or a bad data file is
a message in the panel, never a traceback that kills the app.
"""

from __future__ import annotations

import asyncio
import html
import json
import time
from collections import deque
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go

from resource_prediction.metrics import DEFAULT_PENALTY
from resource_prediction.simulation.catalog import (
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

__all__ = ["SimulationApp"]

#: Colours of the chart's traces.
COLORS = {
    "request": "#9e9e9e",
    "allocation": "#1f77b4",
    "peak": "#222222",
    "under": "#d62728",
}
TRACE_NAMES = ("Configured request", "Model allocation", "Actual peak", "Under-allocated")
#: Metadata shown first in the model panel (the rest follows in the model's order).
INFO_FIRST = ("family", "task_type", "params", "holdout_metrics", "training", "penalty", "created_at")


def _fmt(value: Any) -> str:
    """Compact display of a metadata value."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float | np.floating):
        return f"{value:,.4g}"
    if isinstance(value, int | np.integer):
        return f"{value:,}"
    if isinstance(value, dict | list | tuple):
        text = json.dumps(value, default=str)
        return text if len(text) <= 300 else text[:300] + " ..."
    if isinstance(value, np.ndarray):
        return _fmt(value.tolist())
    return str(value)


def _table(rows: dict, css: str) -> str:
    cells = "".join(
        f"<tr><th style='text-align:left;padding-right:1em;vertical-align:top'>{html.escape(str(k))}</th>"
        f"<td style='word-break:break-word'>{html.escape(_fmt(v))}</td></tr>"
        for k, v in rows.items()
    )
    return f"<table class='{css}' style='table-layout:fixed;width:100%'>{cells}</table>"


def explanation_headline(explanation: dict) -> str:
    """One line on what the model based its last allocation on (classification, quantile ensemble)."""
    e = explanation
    if "predicted_bin" in e and "bin_upper_gb" in e:
        moved = " (moved up one bin: low confidence)" if e.get("moved_up") else ""
        return (
            f"Predicted bin {e['predicted_bin']}, allocated bin {e.get('bin', e['predicted_bin'])}: "
            f"{e.get('bin_lower_gb', float('nan')):,.1f} to {e['bin_upper_gb']:,.1f} GB, "
            f"confidence {e.get('confidence', float('nan')):.2f}{moved}"
        )
    if "alpha" in e and "safety" in e:
        return f"Quantile level alpha = {e['alpha']:.3f}, safety factor {e['safety']:.2f}"
    if "alpha" in e:
        return f"Quantile level alpha = {e['alpha']:.3f}"
    return ""


class SimulationApp:
    """The simulation app: replay held-out jobs through a trained model, live.

    Parameters
    ----------
    artifacts_dir : str or Path
        Artifacts directory (models under ``trained_models/``, default data under ``data/``);
        empty: see :func:`~resource_prediction.simulation.catalog.resolve_artifacts_dir`.
    data_path : str or Path
        Telemetry to replay; empty: the default data of ``artifacts_dir``.
    window : int
        Jobs shown on the chart (the latest ones).
    penalty : float
        Penalty of the business score.
    seed : int
        Seed of the default data, if it has to be generated.
    holdout_only : bool
        Replay only the latest ``test_fraction`` of the file (the holdout the models never saw).
    test_fraction : float
        Share of the jobs held out.
    delay : float
        Initial delay between steps when playing, seconds (0 = as fast as possible).
    batch_size : int
        Initial jobs per step.
    redraw_interval : float
        While playing, the chart is redrawn at most this often (seconds); the counters every step.
        Single steps always redraw.

    Attributes
    ----------
    sim : ReplaySimulation or None
        The replay (None while no data is loaded).
    error : str or None
        The last error shown in the panel.
    """

    def __init__(
        self,
        artifacts_dir: str | Path = "",
        data_path: str | Path = "",
        *,
        window: int = 300,
        penalty: float = DEFAULT_PENALTY,
        seed: int = 0,
        holdout_only: bool = True,
        test_fraction: float = 0.10,
        delay: float = 0.0,
        batch_size: int = 1,
        redraw_interval: float = 0.1,
    ) -> None:
        self.artifacts_dir = resolve_artifacts_dir(artifacts_dir)
        self.window = int(window)
        self.penalty = float(penalty)
        self.seed = int(seed)
        self.test_fraction = float(test_fraction)
        self.redraw_interval = float(redraw_interval)
        self.entries: list[ModelEntry] = discover_models(self.artifacts_dir)
        self._entries = {e.key: e for e in self.entries}
        self.sim: ReplaySimulation | None = None
        self.error: str | None = None
        self.model_info: dict = {}
        self.last_explanation: dict | None = None
        self._task: asyncio.Task | None = None
        self._playing = False
        self._build_widgets(str(data_path), holdout_only, delay, batch_size)
        self.load_data()

    # ------------------------------------------------------------------ layout
    def _build_widgets(self, data_path: str, holdout_only: bool, delay: float, batch_size: int) -> None:
        w = widgets
        self.title = w.HTML(
            "<h3 style='margin:0'>Memory allocation replay</h3>"
            "<p style='margin:0'>Each held-out job is sized by the model before it runs; when it ends, its "
            "peak is revealed and fed back to the model, as a scheduler would.</p>"
        )
        options = [(e.label, e.key) for e in self.entries]
        self.model_selector = w.RadioButtons(
            options=options, value=options[0][1] if options else None, description="Model",
            layout=w.Layout(width="auto"),
        )
        self.data_path = w.Text(
            value=data_path, description="Data",
            placeholder=f"empty: holdout of {self.artifacts_dir / 'data' / 'default_telemetry.csv'}",
            layout=w.Layout(width="60%"),
        )
        self.holdout_only = w.Checkbox(
            value=holdout_only, description=f"holdout only (latest {self.test_fraction:.0%})", indent=False,
        )
        self.load_button = w.Button(description="Load data", icon="upload")
        self.data_status = w.HTML()
        self.play_button = w.Button(description="Play", icon="play", button_style="success")
        self.pause_button = w.Button(description="Pause", icon="pause")
        self.step_button = w.Button(description="Step", icon="step-forward", button_style="info")
        self.reset_button = w.Button(description="Reset", icon="undo", button_style="warning")
        for button, name in (
            (self.play_button, "play"), (self.pause_button, "pause"),
            (self.step_button, "step"), (self.reset_button, "reset"), (self.load_button, "load"),
        ):
            button.add_class(f"rp-{name}")
        self.delay_slider = w.FloatSlider(
            value=delay, min=0.0, max=2.0, step=0.05, description="Delay (s)", readout_format=".2f",
            tooltip="seconds between steps while playing; 0 = as fast as possible",
        )
        self.batch_slider = w.IntSlider(value=batch_size, min=1, max=200, description="Jobs / step")
        self.status = w.HTML().add_class("rp-status")
        self.counters = w.HTML().add_class("rp-counters")
        self.panel = w.HTML(layout=w.Layout(max_height="760px", overflow="auto"))
        self.panel.add_class("rp-model-panel")
        self.figure = self._make_figure()

        self.model_selector.observe(self._on_model_change, names="value")
        self.load_button.on_click(lambda _: self.load_data())
        self.play_button.on_click(lambda _: self.play())
        self.pause_button.on_click(lambda _: self.pause())
        self.step_button.on_click(lambda _: self.step())
        self.reset_button.on_click(lambda _: self.reset())

        controls = w.HBox([self.play_button, self.pause_button, self.step_button, self.reset_button])
        sliders = w.HBox([self.delay_slider, self.batch_slider])
        data_row = w.HBox([self.data_path, self.holdout_only, self.load_button])
        left = w.VBox([self.model_selector, self.panel], layout=w.Layout(width="34%"))
        right = w.VBox(
            [controls, sliders, self.status, self.counters, self.figure], layout=w.Layout(width="66%")
        )
        self.widget = w.VBox([self.title, data_row, self.data_status, w.HBox([left, right])])
        self.widget.add_class("rp-simulation")

    def _make_figure(self) -> go.FigureWidget:
        # Traces and layout go into the constructor: the widget's initial state carries them
        # (traces added to a FigureWidget before it is displayed do not reach the browser).
        traces = [
            go.Scatter(name=TRACE_NAMES[0], mode="markers",
                       marker=dict(color=COLORS["request"], symbol="line-ew-open", size=12,
                                   line=dict(width=2, color=COLORS["request"]))),
            go.Scatter(name=TRACE_NAMES[1], mode="lines+markers",
                       line=dict(color="rgba(31, 119, 180, 0.25)", width=1),
                       marker=dict(color=COLORS["allocation"], size=6)),
            go.Scatter(name=TRACE_NAMES[2], mode="markers", marker=dict(color=COLORS["peak"], size=5)),
            go.Scatter(name=TRACE_NAMES[3], mode="markers",
                       marker=dict(color=COLORS["under"], size=12, symbol="x-thin",
                                   line=dict(width=2.5, color=COLORS["under"]))),
        ]
        layout = go.Layout(
            height=420, margin=dict(l=60, r=20, t=40, b=40), template="plotly_white",
            title=dict(text=f"Last {self.window} jobs", font=dict(size=14)),
            xaxis=dict(title="job time (UTC)", type="date"),
            yaxis=dict(title="memory (GB, log scale)", type="log"),
            legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1),
        )
        self._reset_window()
        return go.FigureWidget(data=traces, layout=layout)

    def _reset_window(self) -> None:
        self._win = {k: deque(maxlen=self.window) for k in ("time", "alloc", "peak", "request")}
        self._stale = False

    def display(self) -> None:
        """Show the app in the notebook (or the Voila page)."""
        from IPython.display import display

        display(self.widget)

    def _ipython_display_(self) -> None:
        self.display()

    # ------------------------------------------------------------------ state shown
    @property
    def playing(self) -> bool:
        """Whether the play task is running."""
        return self._task is not None and not self._task.done()

    @property
    def ready(self) -> bool:
        """Whether a data set and a model are loaded (steps can run)."""
        return self.sim is not None and self.sim.model_name is not None

    def _show_error(self, message: str) -> None:
        self.error = message
        self._render_panel()

    def _render_status(self) -> None:
        if self.sim is None:
            text = "no data loaded"
        elif not self.entries:
            text = (
                f"No trained models in <code>{html.escape(str(self.artifacts_dir / 'trained_models'))}"
                "</code>: run <code>make run</code> (the pipeline trains and exports them) first."
            )
        else:
            state = "playing" if self.playing else ("finished" if self.sim.done else "paused")
            text = f"job <b>{self.sim.position:,}</b> of {self.sim.n_jobs:,} &middot; {state}"
        self.status.value = text

    def _render_counters(self) -> None:
        m = self.sim.metrics() if self.sim is not None else {"n_jobs": 0}
        if not m["n_jobs"]:
            self.counters.value = "<span class='rp-jobs'>0</span> jobs replayed"
            return
        saved = ""
        if "saved_gb" in m:
            saved = (
                f"<td>memory saved vs configured request<br><b><span class='rp-saved'>"
                f"{m['saved_gb']:,.0f} GB ({m['saved_pct']:.1f} %)</span></b></td>"
            )
        reference = (
            f"<br><small>configured request: {m['request_business_score']:.1f}</small>"
            if "request_business_score" in m else ""
        )
        self.counters.value = (
            "<table style='width:100%;text-align:center'><tr>"
            f"<td>jobs<br><b><span class='rp-jobs'>{m['n_jobs']:,}</span></b></td>"
            f"<td>under-allocated<br><b><span class='rp-under'>{m['under_pct']:.2f} %</span></b>"
            f" ({m['n_under']:,})</td>"
            f"<td>total over-allocation<br><b><span class='rp-over'>{m['total_over_pct']:.1f} %</span></b></td>"
            f"{saved}"
            f"<td>business score<br><b><span class='rp-score'>{m['business_score']:.1f}</span></b>{reference}</td>"
            "</tr></table>"
        )

    def _render_panel(self) -> None:
        parts = []
        if self.error:
            parts.append(
                f"<div class='rp-error' style='color:#b00020;border:1px solid #b00020;padding:4px'>"
                f"<b>Error</b>: {html.escape(self.error)}</div>"
            )
        entry = self._entries.get(self.model_selector.value) if self.model_selector.value else None
        if entry is not None:
            parts.append(f"<h4 style='margin:4px 0'>{html.escape(entry.label)}</h4>")
            parts.append(f"<small>{html.escape(str(entry.path))}</small>")
        if self.last_explanation:
            parts.append("<h4 style='margin:8px 0 2px'>Last job</h4>")
            headline = explanation_headline(self.last_explanation)
            if headline:
                parts.append(f"<p class='rp-headline' style='margin:2px 0'>{html.escape(headline)}</p>")
            parts.append(_table(self.last_explanation, "rp-explanation"))
        if self.model_info:
            parts.append("<h4 style='margin:8px 0 2px'>Model metadata</h4>")
            parts.append(_table(self.model_info, "rp-model-info"))
        self.panel.value = "".join(parts)

    # ------------------------------------------------------------------ actions
    def load_data(self, path: str | Path | None = None) -> bool:
        """Load the jobs to replay (the text box's path when ``path`` is None); keep the model."""
        self.pause()
        if path is not None:
            self.data_path.value = str(path)
        source = self.data_path.value.strip()
        try:
            jobs = load_simulation_jobs(
                source or None, self.artifacts_dir, holdout_only=self.holdout_only.value,
                test_fraction=self.test_fraction, seed=self.seed,
            )
            sim = ReplaySimulation(jobs, penalty=self.penalty)
        except Exception as exc:  # a bad file is a message, not a dead app
            self.data_status.value = (
                f"<span class='rp-error' style='color:#b00020'>cannot load the data: "
                f"{html.escape(type(exc).__name__)}: {html.escape(str(exc))}</span>"
            )
            self._render_status()
            return False
        self.sim = sim
        what = "holdout of " if self.holdout_only.value else ""
        name = source or str(self.artifacts_dir / "data" / "default_telemetry.csv")
        self.data_status.value = (
            f"replaying {sim.n_jobs:,} jobs ({what}<code>{html.escape(name)}</code>), "
            f"{str(sim.jobs['time'].iloc[0])[:16]} to {str(sim.jobs['time'].iloc[-1])[:16]}"
        )
        self._clear_chart()
        if self.model_selector.value is not None:
            self.select_model(self.model_selector.value)
        else:
            self._render_all()
        return True

    def _on_model_change(self, change: dict) -> None:
        if change["new"] is not None:
            self.select_model(change["new"])

    def select_model(self, key: str) -> bool:
        """Switch to the model ``key`` (loading it on first use), keeping the replay position."""
        if self.model_selector.value != key:
            self.model_selector.value = key  # calls back here through the observer
            return self.sim is not None and self.sim.model_name == key
        entry = self._entries[key]
        self.error = None
        self.last_explanation = None
        try:
            if self.sim is not None and key in self.sim.model_names:
                model = self.sim.set_model(key)
            else:
                model = load_entry(entry)
                if self.sim is not None:
                    model = self.sim.set_model(key, model)
            info = dict(model.get_model_info()) if hasattr(model, "get_model_info") else {}
            first = {k: info[k] for k in INFO_FIRST if k in info}
            self.model_info = first | {k: v for k, v in info.items() if k not in first}
        except Exception as exc:  # a broken artifact is shown, the app goes on
            self.model_info = {}
            if self.sim is not None:
                self.sim.model_name = None
            self.error = f"cannot use {entry.label} ({entry.path.name}): {type(exc).__name__}: {exc}"
            self.pause()
        self._render_all()
        return self.error is None

    def step(self, *, draw: bool = True) -> StepResult | None:
        """Replay one step (``Jobs / step`` jobs) and update counters, chart and panel.

        ``draw=False`` only appends the jobs to the chart's window (play redraws the chart at most
        every ``redraw_interval`` seconds, so a fast replay does not flood the browser).
        """
        if not self.ready:
            if self.sim is not None and self.error is None:
                self._show_error("select a model that loads to replay jobs")
            self._render_status()
            return None
        if self.sim.done:
            self._render_status()
            return None
        try:
            result = self.sim.step(self.batch_slider.value, explain=True)
        except Exception as exc:
            self._playing = False
            self._show_error(f"{self.sim.model_name}: the step failed: {type(exc).__name__}: {exc}")
            self._render_status()
            return None
        self.last_explanation = result.explanation
        self._append_chart(result, draw=draw)
        self._render_counters()
        self._render_panel()
        self._render_status()
        return result

    def play(self) -> asyncio.Task | None:
        """Start replaying on the running event loop; returns the task (None if nothing to play).

        The task steps, sleeps the delay (0 still yields to the loop, so clicks are handled) and
        stops at pause, at the end of the jobs or on an error.
        """
        if self.playing:
            self._playing = True
            return self._task
        if not self.ready or self.sim.done:
            self._render_status()
            return None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._show_error("play needs a running event loop (a Jupyter kernel); use Step instead")
            return None
        self._playing = True
        self._task = loop.create_task(self._play_loop())
        self._render_status()
        return self._task

    async def _play_loop(self) -> None:
        last_draw = 0.0
        try:
            while self._playing and self.ready and not self.sim.done:
                now = time.monotonic()
                draw = now - last_draw >= self.redraw_interval
                if self.step(draw=draw) is None:
                    break
                if draw:
                    last_draw = now
                await asyncio.sleep(float(self.delay_slider.value))
        finally:
            self._playing = False
            self._task = None
            self._draw_chart()
            self._render_status()

    def pause(self) -> None:
        """Stop playing after the current step."""
        self._playing = False
        self._render_status()

    def reset(self) -> None:
        """Back to the first job: counters and chart cleared, models in their deployed state."""
        self.pause()
        if self.sim is not None:
            try:
                self.sim.reset()
            except Exception as exc:
                self.sim.model_name = None
                self.error = f"reset failed: {type(exc).__name__}: {exc}"
        self.last_explanation = None
        self._clear_chart()
        self._render_all()

    def _render_all(self) -> None:
        self._render_counters()
        self._render_panel()
        self._render_status()

    # ------------------------------------------------------------------ chart
    def _clear_chart(self) -> None:
        self._reset_window()
        with self.figure.batch_update():
            for trace in self.figure.data:
                trace.x, trace.y = [], []

    def _append_chart(self, result: StepResult, draw: bool = True) -> None:
        """Append the step's jobs to the window (the last ``window`` jobs); redraw if ``draw``."""
        win = self._win
        win["time"].extend(result.time)
        win["alloc"].extend(result.allocated_gb)
        win["peak"].extend(result.peak_gb)
        win["request"].extend(result.request_gb)
        self._stale = True
        if draw:
            self._draw_chart()

    def _draw_chart(self) -> None:
        """Send the window to the chart (if it changed since the last drawing)."""
        if not self._stale:
            return
        win = self._win
        # ISO strings: read as dates by plotly.js whatever the axis settings.
        t = np.datetime_as_string(
            np.fromiter(win["time"], dtype="datetime64[ns]", count=len(win["time"])), unit="s"
        )
        alloc = np.fromiter(win["alloc"], dtype=float, count=len(win["alloc"]))
        peak = np.fromiter(win["peak"], dtype=float, count=len(win["peak"]))
        request = np.fromiter(win["request"], dtype=float, count=len(win["request"]))
        under = alloc < peak
        request_trace, alloc_trace, peak_trace, under_trace = self.figure.data
        with self.figure.batch_update():
            request_trace.x, request_trace.y = t, request
            alloc_trace.x, alloc_trace.y = t, alloc
            peak_trace.x, peak_trace.y = t, peak
            under_trace.x, under_trace.y = t[under], peak[under]
        self._stale = False
