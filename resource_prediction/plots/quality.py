"""The quality benchmark in one chart: every scenario's scores as multiples of its oracle.

:func:`oracle_ratio_figure` draws :func:`~resource_prediction.quality_page.family_ratio_table`
(families x scenarios) as grouped bars, with the oracle (1) and the ``bar`` a champion should stay
under as lines.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

__all__ = ["oracle_ratio_figure"]

#: Baselines always drawn beside the best families: what users run today.
TODAY = ("configured_request", "max_seen")


def oracle_ratio_figure(ratios: pd.DataFrame, n_best: int = 4, bar: float = 1.15) -> go.Figure:
    """Grouped bars of ``ratios`` (index: family, columns: scenario): the ``n_best`` families by
    mean ratio, and today's configured request and ``max_seen``."""
    shown = list(ratios.index[:n_best]) + [f for f in TODAY if f in ratios.index[n_best:]]
    fig = go.Figure([go.Bar(name=family, x=list(ratios.columns), y=ratios.loc[family].tolist())
                     for family in shown])
    fig.add_hline(y=1.0, line_dash="dot", annotation_text="oracle")
    fig.add_hline(y=bar, line_dash="dash", annotation_text=f"{bar:g} x oracle")
    fig.update_layout(barmode="group", yaxis_title="holdout score / oracle score (log)",
                      yaxis_type="log", xaxis_title="scenario", legend_title="family",
                      margin={"t": 30})
    return fig
