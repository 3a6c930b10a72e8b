"""Nextflow trace reports as telemetry: size the memory of workflow tasks with the same models.

A Nextflow trace report (``nextflow run ... -with-trace``) has one row per task. Its columns map onto
the telemetry schema (:data:`~resource_prediction.data.RAW_COLUMNS`):

============== ============================================ ==========================================
telemetry      from the trace                               why
============== ============================================ ==========================================
``component``  ``process``                                  the task type: the history key
``time``       ``submit`` (epoch ms, or a date-time text)   when the memory had to be asked for
``max_rss``    ``peak_rss`` (bytes, or ``274.5 MB``)         the target
``memreq``     ``memory`` (bytes, or ``4 GB``), in MB       the request: the ``configured_request``
``jobs``       ``cpus`` (also ``localJobs``)                CPUs requested
``targets``    ``tag`` (the sample or input label)          input label
``branch``     the workflow name (the file name by default) one "branch" per workflow
``location``   ``hostname`` when present                    the executor host
``atom_id``    ``hash`` (else ``task_id``)                  the task's identity
============== ============================================ ==========================================

Fields that Nextflow leaves empty (``-``) are missing values, so a task without ``peak_rss`` (a failed
task, say) is dropped and counted as ``missing_max_rss`` by :func:`~resource_prediction.data.coerce_raw`.
Both trace formats work: raw numbers (``trace.raw = true``) and Nextflow's human-readable sizes and
dates. :func:`~resource_prediction.data.load_telemetry` recognises a trace by its header, so every
``--data`` option takes a trace file as it stands.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

from resource_prediction.data import TelemetryError

__all__ = [
    "NEXTFLOW_REQUIRED",
    "NextflowTraceError",
    "is_nextflow_trace",
    "nextflow_to_telemetry",
    "parse_bytes",
]

#: Trace columns without which a trace cannot be used.
NEXTFLOW_REQUIRED: tuple[str, ...] = ("process", "submit", "peak_rss", "memory")
#: Columns that tell a trace from build telemetry.
_SIGNATURE = frozenset({"process", "peak_rss"})
_UNITS = {"B": 0, "KB": 1, "MB": 2, "GB": 3, "TB": 4, "PB": 5}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([KMGTP]?B)\s*$", re.IGNORECASE)
BYTES_PER_MB = 1024**2


class NextflowTraceError(TelemetryError):
    """A trace that cannot be used: the message names the file, the column or the rows."""


def is_nextflow_trace(columns: Iterable[str]) -> bool:
    """Whether a header is a Nextflow trace's (it has ``process`` and ``peak_rss``)."""
    return _SIGNATURE <= set(columns)


def _missing_dash(values: pd.Series) -> pd.Series:
    """Nextflow's ``-`` (and blanks) as missing values."""
    if pd.api.types.is_numeric_dtype(values):
        return values
    text = values.astype("str").str.strip()
    return text.where(~text.isin(["-", ""]) & values.notna())


def parse_bytes(
    values: pd.Series, source: str = "<trace>", column: str = "memory", errors: str = "raise"
) -> pd.Series:
    """Sizes in bytes from numbers or Nextflow's text (``4 GB``, ``274.5 MB``; 1 KB = 1024 B).

    Missing values stay missing. A text that is neither raises :class:`NextflowTraceError`
    (``errors="raise"``) or comes back unchanged in a ``str`` column of the numbers
    (``errors="keep"``, for the loader to drop and count).

    >>> parse_bytes(pd.Series(["4 GB", "512", "1.5 KB", "-"])).tolist()
    [4294967296.0, 512.0, 1536.0, nan]
    """
    values = _missing_dash(values)
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    rest = numbers.isna() & values.notna()
    if not rest.any():
        return numbers
    parts = values[rest].astype("str").str.extract(_SIZE)
    power = parts[1].str.upper().map(_UNITS).astype("float64")
    numbers[rest] = parts[0].astype("float64") * 1024.0**power
    bad = parts.index[parts[0].isna()]
    if bad.empty:
        return numbers
    if errors == "keep":
        return numbers.astype("str").where(numbers.notna(), values.astype("str"))
    lines = ", ".join(str(i + 2) for i in bad[:5])
    raise NextflowTraceError(
        f"{source}: column {column!r} has {bad.size} value(s) that are neither bytes nor a size"
        f" like '4 GB' (file lines {lines}): {values[bad].head(3).tolist()}"
    )


def _submit_times(values: pd.Series) -> pd.Series:
    """Epoch milliseconds as ISO 8601 UTC text; other text is left for the telemetry's time parser."""
    values = _missing_dash(values)
    ms = pd.to_numeric(values, errors="coerce")
    iso = pd.to_datetime(ms, unit="ms", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return iso.where(ms.notna(), values.astype("str").where(values.notna())).astype("str")


def _text(trace: pd.DataFrame, column: str, default: str) -> pd.Series:
    if column not in trace.columns:
        return pd.Series(default, index=trace.index, dtype="str")
    return _missing_dash(trace[column]).astype("str").fillna(default)


def _number(trace: pd.DataFrame, column: str) -> pd.Series:
    if column not in trace.columns:
        return pd.Series(np.nan, index=trace.index)
    return pd.to_numeric(_missing_dash(trace[column]), errors="coerce")


def nextflow_to_telemetry(
    trace: pd.DataFrame, source: str = "<trace>", workflow: str = "nextflow"
) -> pd.DataFrame:
    """Raw telemetry rows (the build schema) from the rows of a Nextflow trace report.

    The result goes through :func:`~resource_prediction.data.coerce_raw` like any raw telemetry
    (which drops and counts unusable rows), or straight into
    :meth:`~resource_prediction.deployable.DeployableModel.predict`.

    Raises
    ------
    NextflowTraceError
        A required trace column is missing, or a requested ``memory`` is unreadable (an
        unreadable ``peak_rss`` stays text, for the loader to drop and count).
    """
    missing = [c for c in NEXTFLOW_REQUIRED if c not in trace.columns]
    if missing:
        raise NextflowTraceError(
            f"{source}: Nextflow trace column(s) missing: {', '.join(missing)}"
        )
    cpus, exit_code = _number(trace, "cpus"), _number(trace, "exit")
    ident = "hash" if "hash" in trace.columns else "task_id"
    return pd.DataFrame(
        {
            "atom_id": _text(trace, ident, "unknown"),
            "time": _submit_times(trace["submit"]),
            "location": _text(trace, "hostname", "unknown"),
            # Out-of-memory kills end with exit 137 (SIGKILL) under most executors.
            "memory_fail_count": (exit_code == 137).astype("float64").where(exit_code.notna()),
            "branch": pd.Series(workflow, index=trace.index, dtype="str"),
            "buildProfile": pd.Series("unknown", index=trace.index, dtype="str"),
            "jobs": cpus,
            "localJobs": cpus,
            "makeType": pd.Series("task", index=trace.index, dtype="str"),
            "targets": _text(trace, "tag", "unknown"),
            "component": _text(trace, "process", ""),
            "ts_phase": pd.Series("task", index=trace.index, dtype="str"),
            "ts_status": _text(trace, "status", "unknown"),
            "cgroup": _text(trace, "native_id", "unknown"),
            # An unreadable peak stays text: the loader drops and counts it (non_numeric_max_rss).
            "max_rss": parse_bytes(trace["peak_rss"], source, "peak_rss", errors="keep"),
            "max_cache": np.nan,
            "memreq": parse_bytes(trace["memory"], source, "memory") / BYTES_PER_MB,
        },
        index=trace.index,
    )
