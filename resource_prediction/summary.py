"""A short, printable summary of a telemetry frame: volume, span, today's baseline and the oracle."""

from __future__ import annotations

import pandas as pd

from resource_prediction.data import time_split
from resource_prediction.metrics import DEFAULT_PENALTY, allocation_metrics
from resource_prediction.schema import frame_schema
from resource_prediction.synthetic import has_truth, oracle_allocation

_KEYS = ("under_pct", "total_over_pct", "business_score", "mean_gb_wasted")


def telemetry_summary(df: pd.DataFrame, penalty: float = DEFAULT_PENALTY, test_fraction: float = 0.10) -> dict:
    """Rows, time span, peak statistics, and on the time holdout the configured request's metrics
    and, when the frame has truth columns, the oracle's."""
    _, holdout = time_split(df, test_fraction)
    out: dict = {
        "rows": len(df),
        "start": str(df["time"].min()),
        "end": str(df["time"].max()),
        "format": frame_schema(df).name,
        "task_column": frame_schema(df).task,
        "components": int(df[frame_schema(df).task].nunique()),
        "mean_peak_gb": float(df["max_rss_gb"].mean()),
        "median_peak_gb": float(df["max_rss_gb"].median()),
        "holdout_rows": len(holdout),
        "holdout_start": str(holdout["time"].min()),
    }
    if "load_report" in df.attrs:
        out["load_report"] = df.attrs["load_report"]
    request = holdout["memreq_gb"]
    known = request.notna().to_numpy()
    if known.any():
        m = allocation_metrics(request[known], holdout["max_rss_gb"][known], penalty)
        out["configured_request"] = {k: m[k] for k in _KEYS} | {"jobs_with_request": int(known.sum())}
    if has_truth(holdout):
        m = allocation_metrics(oracle_allocation(holdout, penalty), holdout["max_rss_gb"], penalty)
        out["oracle"] = {k: m[k] for k in _KEYS}
    return out


def format_summary(summary: dict) -> str:
    """Human-readable lines of :func:`telemetry_summary`."""
    lines = [
        f"jobs: {summary['rows']:,} from {summary['start']} to {summary['end']} "
        f"({summary['components']} {summary.get('task_column', 'component')} values, "
        f"{summary.get('format', 'build')} telemetry)",
        f"peak memory: mean {summary['mean_peak_gb']:.1f} GB, median {summary['median_peak_gb']:.1f} GB",
        f"holdout (latest 10 %): {summary['holdout_rows']:,} jobs from {summary['holdout_start']}",
    ]
    if "configured_request" not in summary:
        lines.append("  configured_request  none: no holdout job has a request")
    for name in ("configured_request", "oracle"):
        if name in summary:
            m = summary[name]
            known = m.get("jobs_with_request", summary["holdout_rows"])
            lines.append(
                f"  {name:<19} under {m['under_pct']:5.2f} %  total over {m['total_over_pct']:6.1f} %  "
                f"business score {m['business_score']:6.1f}  mean waste {m['mean_gb_wasted']:.1f} GB/job"
                + (f"  (the {known:,} jobs with a request)" if known < summary["holdout_rows"] else "")
            )
    return "\n".join(lines)
