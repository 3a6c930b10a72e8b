"""Tables and figures of the hyper-parameter search, one view of every family at once.

* :func:`search_table`: best cross-validated score per family with the trials it used (from
  :func:`~resource_prediction.training.search.search_summary`);
* :func:`best_params_table`: the best parameters of every family, one readable row per parameter;
* :func:`trials_table`: every finished trial of the stored studies (score and best so far);
* :func:`history_figure`: the optimisation history of all families in one chart;
* :func:`pruning_figure`: one family's running CV score after each fold (pruned trials stop early).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from resource_prediction.paths import ArtifactPaths
from resource_prediction.training.storage import open_storage, study_name

__all__ = ["best_params_table", "history_figure", "pruning_figure", "search_table", "trials_table"]

#: Trial states shown, in this order.
STATES = ("COMPLETE", "PRUNED", "FAIL")


def search_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Best CV score per family (rounded) and the trials it took, best family first (index: family)."""
    if summary.empty:
        return pd.DataFrame(columns=["family", "task type", "best CV score", "best trial", "trials",
                                     "complete", "pruned", "failed"]).set_index("family")
    table = summary.sort_values("best_value", na_position="last").assign(
        best_value=lambda d: d["best_value"].round(1),
        best_trial=lambda d: d["best_trial"].astype("Int64"),
    )
    columns = {"family": "family", "task_type": "task type", "best_value": "best CV score",
               "best_trial": "best trial", "n_trials": "trials", "n_complete": "complete",
               "n_pruned": "pruned", "n_failed": "failed"}
    return table[list(columns)].rename(columns=columns).set_index("family")


def _readable(value) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float | np.floating):
        return f"{value:.3g}"
    return str(value)


def best_params_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The best trial's parameters: one row per parameter, one column per family (in the order of
    ``summary``), numbers to 3 significant digits, empty where a family has no such parameter."""
    rows = []
    for r in summary.itertuples():
        params = r.best_params
        if isinstance(params, str):
            params = json.loads(params) if params else {}
        for name, value in sorted((params or {}).items()):
            rows.append({"family": r.family, "parameter": name, "value": _readable(value)})
    long = pd.DataFrame(rows, columns=["family", "parameter", "value"])
    families = [f for f in summary["family"] if f in set(long["family"])]
    table = long.pivot(index="parameter", columns="family", values="value")
    return table.reindex(columns=families).fillna("").rename_axis(columns=None)


def trials_table(
    families: Iterable[str], storage: str | None = None, paths: ArtifactPaths | None = None
) -> pd.DataFrame:
    """Every finished trial of the families' stored studies: state, CV score, best so far, folds.

    ``folds`` holds the running CV score after each fold (what the pruner judged).
    """
    opened = open_storage(storage, paths)
    names = {s.study_name for s in optuna.get_all_study_summaries(opened, include_best_trial=False)}
    rows = []
    for family in families:
        if study_name(family) not in names:
            continue
        study = optuna.load_study(study_name=study_name(family), storage=opened)
        best = np.inf
        for t in study.get_trials(deepcopy=False, states=[getattr(optuna.trial.TrialState, s)
                                                           for s in STATES]):
            value = t.value if t.state == optuna.trial.TrialState.COMPLETE else np.nan
            if np.isfinite(value):
                best = min(best, value)
            rows.append({"family": family, "trial": t.number, "state": t.state.name.lower(),
                         "cv_score": value, "best_so_far": best if np.isfinite(best) else np.nan,
                         "folds": [t.intermediate_values[k] for k in sorted(t.intermediate_values)]})
    return pd.DataFrame(rows, columns=["family", "trial", "state", "cv_score", "best_so_far", "folds"])


def history_figure(trials: pd.DataFrame, title: str = "Optimisation history of every family") -> go.Figure:
    """Best CV score so far against the trial number, one line per family (dots: each trial)."""
    fig = go.Figure()
    palette = qualitative.Plotly
    for i, (family, t) in enumerate(trials.groupby("family", sort=False)):
        color = palette[i % len(palette)]
        fig.add_trace(go.Scatter(
            x=t["trial"], y=t["best_so_far"], name=family, mode="lines", legendgroup=family,
            line={"shape": "hv", "color": color, "width": 2},
            hovertemplate=family + ": best %{y:.1f} after trial %{x}<extra></extra>",
        ))
        done = t[t["cv_score"].notna()]
        fig.add_trace(go.Scatter(
            x=done["trial"], y=done["cv_score"], name=family, mode="markers", legendgroup=family,
            showlegend=False, marker={"color": color, "size": 6, "opacity": 0.5},
            hovertemplate=family + ": trial %{x} scored %{y:.1f}<extra></extra>",
        ))
    fig.update_layout(
        title=title, template="plotly_white", height=480,
        xaxis={"title": "trial", "tickformat": "d", "rangemode": "tozero"},
        yaxis={"title": "CV business score (lower is better)"},
        legend={"title": "family (line: best so far)"},
    )
    if len(trials) and trials["trial"].max() < 10:
        fig.update_xaxes(dtick=1)
    return fig


def pruning_figure(trials: pd.DataFrame, family: str) -> go.Figure:
    """One family's running CV score after each fold, one line per trial (pruned ones dashed)."""
    fig = go.Figure()
    for t in trials[trials["family"] == family].itertuples():
        folds = list(t.folds)
        if not folds:
            continue
        fig.add_trace(go.Scatter(
            x=list(range(1, len(folds) + 1)), y=folds, mode="lines+markers",
            name=f"trial {t.trial} ({t.state})",
            line={"dash": "dot" if t.state == "pruned" else "solid"},
        ))
    fig.update_layout(
        title=f"{family}: running CV score per fold", template="plotly_white", height=360,
        xaxis={"title": "fold", "dtick": 1, "tickformat": "d"},
        yaxis={"title": "running CV business score"}, showlegend=len(fig.data) <= 12,
    )
    return fig
