"""Figures of the holdout evaluation: they take the report frames and return ``go.Figure``.

* :func:`holdout_table`: the holdout table with readable column names, rounded;

* :func:`comparison_chart`: business score per family with its bootstrap 95 % interval (baselines and
  the oracle included), from ``reports/holdout_results.csv``;
* :func:`allocation_category_chart`: the share of jobs per allocation category, stacked;
* :func:`predicted_vs_actual_chart`: allocation against real peak (log axes), from
  ``reports/holdout_predictions.parquet``;
* :func:`pareto_chart`: the quantile ensemble's (under %, total over %) points, the frontier and the
  three exported variants, from ``reports/pareto.csv``.

:func:`write_figures` saves figures as HTML and, when a Chromium is available to kaleido, PNG.
"""

from __future__ import annotations

import logging
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from resource_prediction.metrics import ALLOCATION_CATEGORIES

__all__ = [
    "TASK_COLOURS",
    "allocation_category_chart",
    "holdout_table",
    "comparison_chart",
    "pareto_chart",
    "predicted_vs_actual_chart",
    "write_figures",
]

log = logging.getLogger(__name__)

TASK_COLOURS = {
    "regression": "#1f77b4",
    "classification": "#ff7f0e",
    "baseline": "#7f7f7f",
    "oracle": "#2ca02c",
}
CATEGORY_COLOURS = ("#d62728", "#2ca02c", "#bcbd22", "#ff7f0e", "#8c564b")
VARIANT_SYMBOLS = {"qe_balanced": "star", "qe_tiny_under_alloc": "diamond", "qe_small_waste": "square"}


#: Columns of :func:`holdout_table`: report column -> (label, decimals).
HOLDOUT_COLUMNS = {
    "family": ("family", None), "task_type": ("task type", None),
    "business_score": ("business score", 1), "ci_low": ("95 % low", 2), "ci_high": ("95 % high", 2),
    "under_pct": ("under-allocated %", 2), "total_over_pct": ("total over-allocation %", 1),
    "mean_gb_wasted": ("GB wasted per job", 1), "predict_ms_per_job": ("ms per job", 3),
    "param_source": ("parameters", None),
}


def holdout_table(holdout: pd.DataFrame) -> pd.DataFrame:
    """The holdout table as the book shows it: best score first, readable labels, rounded (index:
    family).

    Columns the report lacks are left out; extra report columns are not shown.
    """
    present = [c for c in HOLDOUT_COLUMNS if c in holdout.columns]
    table = holdout.sort_values("business_score", na_position="last")[present].copy()
    for column in present:
        decimals = HOLDOUT_COLUMNS[column][1]
        if decimals is not None:
            table[column] = pd.to_numeric(table[column], errors="coerce").round(decimals)
    if {"ci_low", "ci_high"} <= set(present):  # one narrow column: "38.5-50.7"
        interval = table["ci_low"].map("{:.1f}".format) + "-" + table["ci_high"].map("{:.1f}".format)
        table.insert(present.index("ci_low"), "ci", interval.where(table["ci_low"].notna(), ""))
        table = table.drop(columns=["ci_low", "ci_high"])
    labels = {c: HOLDOUT_COLUMNS[c][0] for c in present} | {"ci": "95 % interval"}
    return table.rename(columns=labels).set_index("family")


def comparison_chart(holdout: pd.DataFrame, title: str = "Business score on the time holdout") -> go.Figure:
    """Horizontal bars of the business score (best at the top) with 95 % bootstrap intervals.

    Parameters
    ----------
    holdout : DataFrame
        ``reports/holdout_results.csv``: columns ``family``, ``task_type``, ``business_score`` and,
        when known, ``ci_low``/``ci_high``, ``under_pct``, ``total_over_pct``.
    """
    df = holdout.sort_values("business_score", ascending=False)
    fig = go.Figure()
    for task, part in df.groupby("task_type", sort=False):
        error = None
        if {"ci_low", "ci_high"} <= set(part.columns):
            error = dict(
                type="data",
                array=(part["ci_high"] - part["business_score"]).to_numpy(),
                arrayminus=(part["business_score"] - part["ci_low"]).to_numpy(),
            )
        hover = [
            f"{r.family}<br>score {r.business_score:.1f}"
            + (f"<br>under {r.under_pct:.2f} %<br>total over {r.total_over_pct:.1f} %"
               if "under_pct" in part.columns else "")
            for r in part.itertuples()
        ]
        fig.add_trace(go.Bar(
            x=part["business_score"], y=part["family"], orientation="h", name=str(task),
            marker_color=TASK_COLOURS.get(str(task), "#9467bd"), error_x=error,
            hovertext=hover, hoverinfo="text",
        ))
    fig.update_layout(
        title=title, xaxis_title="business score (lower is better)", yaxis_title=None,
        barmode="overlay", height=max(350, 32 * len(df) + 120), legend_title="type",
        yaxis={"categoryorder": "array", "categoryarray": df["family"].tolist()},
    )
    return fig


def allocation_category_chart(holdout: pd.DataFrame, title: str = "Allocation categories") -> go.Figure:
    """Stacked horizontal bars: % of holdout jobs per allocation category, one bar per family."""
    df = holdout.sort_values("business_score", ascending=False)
    fig = go.Figure()
    for (label, _, _), colour in zip(ALLOCATION_CATEGORIES, CATEGORY_COLOURS, strict=True):
        column = f"{label} %"
        if column not in df.columns:
            continue
        fig.add_trace(go.Bar(
            x=df[column], y=df["family"], orientation="h", name=label, marker_color=colour,
            hovertemplate="%{y}: %{x:.1f} %<extra>" + label + "</extra>",
        ))
    fig.update_layout(
        title=title, barmode="stack", xaxis_title="% of holdout jobs",
        height=max(350, 32 * len(df) + 120),
        yaxis={"categoryorder": "array", "categoryarray": df["family"].tolist()},
    )
    return fig


def predicted_vs_actual_chart(
    predictions: pd.DataFrame,
    families: list[str] | None = None,
    max_points: int = 3000,
    seed: int = 0,
    title: str = "Allocation against the real peak (holdout)",
) -> go.Figure:
    """Scatter of allocation against real peak on log axes, with the diagonal.

    Parameters
    ----------
    predictions : DataFrame
        Long format: ``family``, ``actual_gb``, ``allocated_gb`` (``reports/holdout_predictions.parquet``).
    families : list of str, optional
        Families to draw (all by default).
    max_points : int
        Points drawn per family (a seeded sample of the jobs).
    """
    families = families or list(dict.fromkeys(predictions["family"]))
    rng = np.random.default_rng(seed)
    fig = go.Figure()
    for fam in families:
        part = predictions[predictions["family"] == fam]
        if len(part) > max_points:
            part = part.iloc[np.sort(rng.choice(len(part), max_points, replace=False))]
        fig.add_trace(go.Scattergl(
            x=part["actual_gb"], y=part["allocated_gb"], mode="markers", name=fam,
            marker={"size": 4, "opacity": 0.5},
        ))
    both = predictions[["actual_gb", "allocated_gb"]].to_numpy(dtype=float)
    lo, hi = float(np.nanmin(both[both > 0])), float(np.nanmax(both))
    fig.add_trace(go.Scatter(
        x=[lo, hi], y=[lo, hi], mode="lines", name="allocation = peak",
        line={"color": "black", "dash": "dash"},
    ))
    fig.update_layout(title=title, xaxis_title="real peak (GB)", yaxis_title="allocation (GB)")
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    return fig


def pareto_chart(pareto: pd.DataFrame, title: str = "Quantile ensemble: under- against over-allocation") -> go.Figure:
    """Every (alpha, safety) point, the Pareto frontier, and the exported variants marked.

    Parameters
    ----------
    pareto : DataFrame
        ``reports/pareto.csv``: ``alpha``, ``safety``, ``under_pct``, ``total_over_pct``,
        ``business_score``, ``on_frontier`` and ``variant`` (the exported variant's name or empty).
    """
    fig = go.Figure()
    hover = [
        f"alpha {r.alpha:.3f}, safety {r.safety:.2f}<br>score {r.business_score:.1f}"
        for r in pareto.itertuples()
    ]
    fig.add_trace(go.Scatter(
        x=pareto["under_pct"], y=pareto["total_over_pct"], mode="markers", name="(alpha, safety) grid",
        marker={"color": "#c7c7c7", "size": 7}, hovertext=hover, hoverinfo="text",
    ))
    front = pareto[pareto["on_frontier"].astype(bool)].sort_values("under_pct")
    fig.add_trace(go.Scatter(
        x=front["under_pct"], y=front["total_over_pct"], mode="lines+markers", name="Pareto frontier",
        line={"color": "#1f77b4"}, marker={"size": 8},
    ))
    variants = pareto[pareto["variant"].fillna("").astype(str) != ""]
    for r in variants.itertuples():
        fig.add_trace(go.Scatter(
            x=[r.under_pct], y=[r.total_over_pct], mode="markers+text", name=r.variant,
            text=[r.variant], textposition="top right",
            marker={"size": 16, "symbol": VARIANT_SYMBOLS.get(r.variant, "circle"), "color": "#d62728"},
        ))
    fig.update_layout(
        title=title, xaxis_title="under-allocated jobs (%)", yaxis_title="total over-allocation (%)",
    )
    return fig


def frontier_chart(
    frontier: pd.DataFrame,
    pareto: pd.DataFrame | None = None,
    holdout: pd.DataFrame | None = None,
    title: str = "Failed jobs against wasted memory (validation window)",
) -> go.Figure:
    """The cost-aware model's penalty frontier against the quantile ensemble's and the baselines.

    Parameters
    ----------
    frontier : DataFrame
        ``reports/frontier.csv``: ``penalty``, ``under_pct``, ``total_over_pct``, ``variant``.
    pareto : DataFrame, optional
        ``reports/pareto.csv``: its frontier points are drawn as a second line.
    holdout : DataFrame, optional
        ``reports/holdout_results.csv``: baselines at their validation ``val_under_pct`` /
        ``val_total_over_pct``.
    """
    fig = go.Figure()
    front = frontier.sort_values("penalty")
    fig.add_trace(go.Scatter(
        x=front["under_pct"], y=front["total_over_pct"], mode="lines+markers",
        name=f"{front['family'].iloc[0]} (penalty swept)" if "family" in front else "penalty swept",
        hovertext=[f"penalty {p:g}" for p in front["penalty"]], hoverinfo="text+x+y",
    ))
    if pareto is not None and not pareto.empty:
        qe = pareto[pareto["on_frontier"].astype(bool)].sort_values("under_pct")
        fig.add_trace(go.Scatter(x=qe["under_pct"], y=qe["total_over_pct"], mode="lines+markers",
                                 name="quantile ensemble frontier"))
    if holdout is not None and "val_under_pct" in holdout:
        base = holdout[holdout["task_type"] == "baseline"].dropna(subset=["val_under_pct"])
        fig.add_trace(go.Scatter(
            x=base["val_under_pct"], y=base["val_total_over_pct"], mode="markers+text",
            text=base["family"], textposition="top right", name="baselines",
            marker={"size": 11, "symbol": "x", "color": "#7f7f7f"},
        ))
    for r in frontier[frontier["variant"].fillna("").astype(str) != ""].itertuples():
        fig.add_trace(go.Scatter(
            x=[r.under_pct], y=[r.total_over_pct], mode="markers", name=f"{r.variant} (penalty {r.penalty:g})",
            marker={"size": 16, "symbol": "star", "color": "#d62728"},
        ))
    fig.update_layout(title=title, xaxis_title="under-allocated jobs (%)",
                      yaxis_title="total over-allocation (%)", yaxis_type="log")
    return fig


def _ensure_browser_path() -> None:
    """Point kaleido at Debian's Chromium when ``BROWSER_PATH`` is unset."""
    if "BROWSER_PATH" not in os.environ:
        found = shutil.which("chromium") or shutil.which("chromium-browser")
        if found:
            os.environ["BROWSER_PATH"] = found


#: Loggers of kaleido's browser control: they log every tab, and tracebacks of browser messages
#: they skip (``JSONError decoding message. Ignoring``), which would land in a notebook's output.
BROWSER_LOGGERS = ("kaleido", "choreographer", "logistro")


@contextmanager
def _quiet_browser_logs():
    """Only CRITICAL records of :data:`BROWSER_LOGGERS` during the export; a failing export still
    raises and is reported by :func:`write_figures` itself."""
    loggers = [logging.getLogger(name) for name in BROWSER_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _png_browser() -> str | None:
    """The Chrome or Chromium kaleido would use (``BROWSER_PATH``, Debian's, kaleido's own), or None."""
    _ensure_browser_path()
    if os.environ.get("BROWSER_PATH"):
        return os.environ["BROWSER_PATH"]
    try:
        from choreographer.browsers.chromium import Chromium

        return Chromium.find_browser(skip_local=False)
    except Exception:  # kaleido's browser finder missing or failing: no PNG, not an error
        return None


def write_figures(figures: dict[str | Path, go.Figure], png: bool = True) -> list[Path]:
    """Write ``<stem>.html`` per figure and, if ``png``, ``<stem>.png``; return the files written.

    The PNGs need kaleido and a Chrome or Chromium (one start for all of them): without one the PNGs
    are skipped with an INFO log line; when the export itself fails a warning is logged. The HTML is
    always written.
    """
    written, stems = [], []
    for stem, fig in figures.items():
        stem = Path(stem)
        stem.parent.mkdir(parents=True, exist_ok=True)
        fig.write_html(stem.with_suffix(".html"), include_plotlyjs=True)
        written.append(stem.with_suffix(".html"))
        stems.append(stem)
    if not (png and stems):
        return written
    if _png_browser() is None:  # a machine without Chrome/Chromium: HTML only, said in the log
        log.info("PNG export skipped (no Chrome or Chromium; `make browser` installs Debian's): "
                 "wrote the HTML of %d charts only", len(stems))
        return written
    targets = [stem.with_suffix(".png") for stem in stems]
    figs = list(figures.values())
    try:
        with _quiet_browser_logs():
            pio.write_images(
                figs, targets, width=1100, height=[int(f.layout.height or 600) for f in figs], scale=1
            )
        written += targets
    except Exception as exc:  # kaleido or Chromium missing or broken: keep the HTML
        log.warning(
            "PNG export of %s failed (%s: %s); wrote the HTML only. Install Chromium "
            "(make browser) or set BROWSER_PATH to a Chrome/Chromium binary.",
            ", ".join(map(str, targets)), type(exc).__name__, exc,
        )
    return written
