"""Figures of the raw telemetry (notebook ``01_data_exploration``).

Each ``*_table`` function computes what a figure shows (a small DataFrame, testable on its own) and each
``*_figure`` function draws it with plotly. Figures are drawn from aggregates (quantiles, counts,
histograms, a seeded sample of points), so a page stays small however many jobs the data has.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from resource_prediction.metrics import DEFAULT_PENALTY, allocation_metrics

#: Quantiles a box shows: whiskers at the 5th and 95th percentile, box at the quartiles.
BOX_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
_TEMPLATE = "plotly_white"


def architecture(df: pd.DataFrame) -> pd.Series:
    """The architecture part of ``buildProfile`` (``linuxx86_64-gcc13-O2`` -> ``linuxx86_64``)."""
    return df["buildProfile"].astype("str").str.split("-", n=1).str[0].rename("architecture")


def _with_architecture(df: pd.DataFrame) -> pd.DataFrame:
    return df if "architecture" in df.columns else df.assign(architecture=architecture(df))


def volume_table(df: pd.DataFrame, freq: str = "D") -> pd.DataFrame:
    """Jobs per period (``freq``: a pandas offset alias) and phase: columns ``period``, ``ts_phase``, ``jobs``."""
    period = df["time"].dt.tz_localize(None).dt.to_period(freq).dt.start_time
    return (
        df.assign(period=period)
        .groupby(["period", "ts_phase"], observed=True)
        .size()
        .rename("jobs")
        .reset_index()
    )


def volume_figure(df: pd.DataFrame, freq: str = "D") -> go.Figure:
    """Stacked bars of the number of jobs per period, by phase."""
    table = volume_table(df, freq)
    fig = go.Figure(
        [go.Bar(x=g["period"], y=g["jobs"], name=str(phase)) for phase, g in table.groupby("ts_phase")]
    )
    fig.update_layout(
        barmode="stack", template=_TEMPLATE, title="Jobs per day", xaxis_title="day",
        yaxis_title="jobs", legend_title="phase", bargap=0,
    )
    return fig


def peak_quantile_table(df: pd.DataFrame, by: str, top: int | None = None) -> pd.DataFrame:
    """Peak memory quantiles (GB) and job counts per value of ``by``, sorted by median peak.

    ``by`` is a column of ``df`` or ``"architecture"``; ``top`` keeps the most frequent values only.
    """
    data = _with_architecture(df) if by == "architecture" else df
    grouped = data.groupby(by, observed=True)["max_rss_gb"]
    table = grouped.quantile(list(BOX_QUANTILES)).unstack()
    table.columns = [f"q{int(round(q * 100)):02d}" for q in BOX_QUANTILES]
    table.insert(0, "jobs", grouped.size())
    if top is not None:
        table = table.nlargest(top, "jobs")
    return table.sort_values("q50").rename_axis(by).reset_index()


def peak_by_figure(df: pd.DataFrame, by: str, top: int | None = None) -> go.Figure:
    """Box plot of the peak memory per value of ``by`` (log scale; whiskers at the 5th/95th percentile)."""
    t = peak_quantile_table(df, by, top)
    fig = go.Figure(
        go.Box(
            x=t[by].astype(str), lowerfence=t["q05"], q1=t["q25"], median=t["q50"], q3=t["q75"],
            upperfence=t["q95"], name="peak", boxpoints=False,
            hovertext=[f"{n:,} jobs" for n in t["jobs"]],
        )
    )
    fig.update_layout(
        template=_TEMPLATE, title=f"Peak memory by {by}",
        yaxis_title="peak memory (GB, log scale)", yaxis_type="log", showlegend=False,
        xaxis={"title": by, "tickangle": -60, "dtick": 1},
    )
    return fig


def growth_table(df: pd.DataFrame, n_components: int = 6, freq: str = "W") -> pd.DataFrame:
    """Median peak per period of the ``n_components`` most frequent components, relative to each
    component's median over its first 20 % of jobs: columns ``period``, ``component``, ``median_gb``,
    ``relative``, ``jobs``."""
    top = df["component"].value_counts().index[:n_components]
    sub = df[df["component"].isin(top)]
    period = sub["time"].dt.tz_localize(None).dt.to_period(freq).dt.start_time
    table = (
        sub.assign(period=period)
        .groupby(["component", "period"], observed=True)["max_rss_gb"]
        .agg(median_gb="median", jobs="size")
        .reset_index()
    )

    def first_fifth(g: pd.Series) -> float:
        return float(g.iloc[: max(1, len(g) // 5)].median())

    base = sub.groupby("component", observed=True)["max_rss_gb"].agg(first_fifth)
    table["relative"] = table["median_gb"] / table["component"].map(base).astype(float)
    return table


def growth_figure(df: pd.DataFrame, n_components: int = 6, freq: str = "W") -> go.Figure:
    """Weekly median peak of the most frequent components relative to their start: code growth."""
    t = growth_table(df, n_components, freq)
    fig = go.Figure(
        [
            go.Scatter(x=g["period"], y=g["relative"], mode="lines", name=str(c),
                       customdata=g[["median_gb", "jobs"]],
                       hovertemplate="%{x}<br>x%{y:.2f}<br>median %{customdata[0]:.1f} GB"
                                     "<br>%{customdata[1]} jobs<extra>" + str(c) + "</extra>")
            for c, g in t.groupby("component", observed=True)
        ]
    )
    fig.add_hline(y=1.0, line_dash="dot", line_color="grey")
    fig.update_layout(
        template=_TEMPLATE, title="Memory growth: weekly median peak relative to the first fifth of the jobs",
        xaxis_title="week", yaxis_title="median peak / initial median", legend_title="component",
    )
    return fig


def provisioning_table(
    df: pd.DataFrame, by: str = "component", penalty: float = DEFAULT_PENALTY, min_jobs: int = 20
) -> pd.DataFrame:
    """How the configured request (``memreq_gb``) fits the peaks, per value of ``by``.

    Columns: ``jobs``, ``under_pct`` (share of jobs above their request), ``total_over_pct`` (memory
    requested beyond the peaks as a share of the peaks), ``business_score``, ``mean_gb_wasted``;
    groups with fewer than ``min_jobs`` jobs with a request are left out. Sorted by business score.
    """
    data = _with_architecture(df) if by == "architecture" else df
    data = data[data["memreq_gb"].notna()]
    rows = []
    for key, g in data.groupby(by, observed=True):
        if len(g) < min_jobs:
            continue
        m = allocation_metrics(g["memreq_gb"], g["max_rss_gb"], penalty)
        rows.append({by: key, "jobs": len(g)} | {
            k: m[k] for k in ("under_pct", "total_over_pct", "business_score", "mean_gb_wasted")
        })
    columns = [by, "jobs", "under_pct", "total_over_pct", "business_score", "mean_gb_wasted"]
    return pd.DataFrame(rows, columns=columns).sort_values("business_score", ascending=False,
                                                           ignore_index=True)


def provisioning_figure(table: pd.DataFrame, by: str = "component") -> go.Figure:
    """Under-allocation % and total over-allocation % of the configured request per group
    (a :func:`provisioning_table`), on two axes."""
    fig = go.Figure(
        [
            go.Bar(x=table[by].astype(str), y=table["total_over_pct"], name="total over-allocation %",
                   marker_color="#f58518"),
            go.Scatter(x=table[by].astype(str), y=table["under_pct"], name="under-allocation % (right)",
                       mode="markers", marker={"color": "#e45756", "size": 9}, yaxis="y2"),
        ]
    )
    fig.update_layout(
        template=_TEMPLATE, title=f"The configured request by {by}: waste (bars) and failures (dots)",
        xaxis_title=by, yaxis_title="total over-allocation %",
        yaxis2={"title": "under-allocation %", "overlaying": "y", "side": "right", "rangemode": "tozero"},
        legend={"orientation": "h", "y": 1.12},
    )
    return fig


def request_vs_peak_figure(df: pd.DataFrame, sample: int = 4000, seed: int = 0) -> go.Figure:
    """Scatter of the configured request against the peak (log-log, a seeded sample of jobs):
    points under the diagonal are jobs whose request was too small."""
    data = df[df["memreq_gb"].notna()]
    if len(data) > sample:
        data = data.sample(sample, random_state=seed)
    under = (data["memreq_gb"] < data["max_rss_gb"]).to_numpy()
    fig = go.Figure(
        [
            go.Scatter(x=data.loc[mask, "max_rss_gb"], y=data.loc[mask, "memreq_gb"], mode="markers",
                         name=name, marker={"size": 4, "opacity": 0.5, "color": color})
            for name, mask, color in (
                ("request >= peak", ~under, "#4c78a8"), ("request < peak (fails)", under, "#e45756")
            )
        ]
    )
    lo = float(min(data["max_rss_gb"].min(), data["memreq_gb"].min()))
    hi = float(max(data["max_rss_gb"].max(), data["memreq_gb"].max()))
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="request = peak",
                             line={"color": "grey", "dash": "dot"}))
    fig.update_layout(
        template=_TEMPLATE, title=f"Configured request against peak ({len(data):,} sampled jobs)",
        xaxis_title="peak memory (GB)", yaxis_title="configured request (GB)",
        xaxis_type="log", yaxis_type="log",
    )
    return fig


def peak_ratio(df: pd.DataFrame, by: tuple[str, ...] = ("component", "makeType", "architecture")) -> pd.Series:
    """Each job's peak divided by the median peak of its group (all jobs of the group, so a
    descriptive statistic, not a feature)."""
    data = _with_architecture(df)
    median = data.groupby(list(by), observed=True)["max_rss_gb"].transform("median")
    return (data["max_rss_gb"] / median).rename("peak_ratio")


def outlier_table(df: pd.DataFrame, threshold: float = 2.0) -> pd.DataFrame:
    """Jobs whose peak is more than ``threshold`` times their group's median, counted per component:
    columns ``component``, ``jobs``, ``outliers``, ``outlier_pct``, sorted by ``outlier_pct``."""
    ratio = peak_ratio(df)
    table = (
        df.assign(outlier=ratio > threshold)
        .groupby("component", observed=True)["outlier"]
        .agg(jobs="size", outliers="sum")
        .reset_index()
    )
    table["outlier_pct"] = 100.0 * table["outliers"] / table["jobs"]
    return table.sort_values("outlier_pct", ascending=False, ignore_index=True)


def outlier_figure(df: pd.DataFrame, threshold: float = 2.0, bins: int = 80) -> go.Figure:
    """Histogram (log count) of the peak / group median ratio with the outlier threshold marked."""
    ratio = np.log2(peak_ratio(df).to_numpy())
    counts, edges = np.histogram(ratio[np.isfinite(ratio)], bins=bins)
    centres = 2 ** ((edges[:-1] + edges[1:]) / 2)
    widths = 2 ** edges[1:] - 2 ** edges[:-1]
    fig = go.Figure(go.Bar(x=centres, y=counts, width=widths, marker_color="#4c78a8", name="jobs"))
    fig.add_vline(x=threshold, line_dash="dash", line_color="#e45756",
                  annotation_text=f"{threshold:g}x the group median")
    fig.update_layout(
        template=_TEMPLATE, title="Peak relative to its group's median peak (component, makeType, architecture)",
        xaxis_title="peak / group median (log scale)", yaxis_title="jobs (log scale)",
        xaxis_type="log", yaxis_type="log", showlegend=False, bargap=0,
    )
    return fig


def allocation_summary_figure(rows: dict[str, dict]) -> go.Figure:
    """Bars of under-allocation %, total over-allocation % and business score for a few named
    allocations (e.g. the configured request and the oracle: ``{"name": allocation_metrics(...)}``)."""
    names = list(rows)
    metrics = (("under_pct", "under-allocation %"), ("total_over_pct", "total over-allocation %"),
               ("business_score", "business score"))
    fig = go.Figure(
        [go.Bar(x=names, y=[rows[n][key] for n in names], name=label,
                text=[f"{rows[n][key]:.1f}" for n in names], textposition="outside")
         for key, label in metrics]
    )
    fig.update_layout(template=_TEMPLATE, barmode="group", title="Holdout allocation: today and the limit",
                      yaxis_title="% / score", legend={"orientation": "h", "y": 1.12})
    return fig


def _correlation_ratio(codes: np.ndarray, y: np.ndarray) -> float:
    """Correlation ratio (eta) of ``y`` on a categorical variable given as integer codes."""
    ok = codes >= 0
    codes, y = codes[ok], y[ok]
    if y.size < 2 or y.var() == 0:
        return float("nan")
    counts = np.bincount(codes)
    means = np.bincount(codes, weights=y) / np.maximum(counts, 1)
    between = np.sum(counts * (means - y.mean()) ** 2)
    return float(np.sqrt(between / (y.var() * y.size)))


def feature_association_table(features: pd.DataFrame, peak_gb, families: dict[str, str]) -> pd.DataFrame:
    """How strongly each feature goes with the (log) peak, one row per feature.

    Numeric features: absolute Spearman rank correlation; categorical ones: the correlation ratio
    (eta) of the log peak. Both lie in [0, 1]; neither sees interactions, so a low value does not
    mean a feature is useless to a tree model. ``families`` maps feature name to family.
    Columns ``feature``, ``family``, ``kind``, ``association``, sorted by association.
    """
    y = np.log(np.asarray(peak_gb, dtype=float))
    rows = []
    for name in features.columns:
        col = features[name]
        if isinstance(col.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(col.dtype):
            codes = pd.Categorical(col).codes.astype(np.int64)
            value, kind = _correlation_ratio(codes, y), "eta"
        else:
            x = col.to_numpy(dtype=float)
            ok = np.isfinite(x)
            if ok.sum() > 2 and np.nanstd(x[ok]) > 0:
                rank_x = pd.Series(x[ok]).rank().to_numpy()
                value = abs(float(np.corrcoef(rank_x, pd.Series(y[ok]).rank().to_numpy())[0, 1]))
            else:
                value = float("nan")
            kind = "|spearman|"
        rows.append({"feature": name, "family": families.get(name, "other"), "kind": kind,
                     "association": value})
    return pd.DataFrame(rows).sort_values("association", ascending=False, ignore_index=True)


def feature_association_figure(table: pd.DataFrame) -> go.Figure:
    """Horizontal bars of :func:`feature_association_table`, coloured by family."""
    t = table.iloc[::-1]
    fig = go.Figure(
        [go.Bar(y=g["feature"], x=g["association"], orientation="h", name=str(fam),
                customdata=g["kind"], hovertemplate="%{y}: %{x:.2f} (%{customdata})<extra></extra>")
         for fam, g in t.groupby("family", sort=False)]
    )
    fig.update_layout(
        template=_TEMPLATE, title="Association of each feature with the log peak",
        xaxis_title="|Spearman| (numeric) or correlation ratio (categorical)", yaxis_title=None,
        height=max(400, 140 + 22 * len(t)),
        legend={"title": "family", "orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom"},
        # Every bar labelled: plotly thins out the labels of a crowded categorical axis otherwise.
        yaxis={"categoryorder": "array", "categoryarray": list(t["feature"]), "tickmode": "array",
               "tickvals": list(t["feature"]), "ticktext": list(t["feature"]), "tickfont": {"size": 11}},
    )
    return fig
