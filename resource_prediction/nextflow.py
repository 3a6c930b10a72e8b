"""Nextflow trace reports as themselves: each task with its own fields.

A trace report (``nextflow run ... -with-trace``; tab- or comma-separated) has one row per task
attempt. :func:`normalize` keeps the trace's columns and adds what the models use:

===================== =========================================== ==================================
column                from the trace                              role
===================== =========================================== ==================================
``time``              ``submit`` (epoch ms, or a date-time text)  when the memory is asked for
``process``           ``process``                                 task type: the fine history group
``scope``             ``process`` without its last ``:`` part     coarse group (the sub-workflow)
``tag``               ``tag`` (the sample or input label)         categorical feature
``cpus``              ``cpus``                                    requested CPUs
``memreq``            ``memory`` (bytes or ``4 GB``), in MB       the configured request
``attempt``           ``attempt``                                 1, then 2, 3 on retries
``time_limit_h``      ``time`` (ms or ``4h``), in hours           the requested time
``failed_memory_gb``  earlier out-of-memory attempts of the task  the largest request that failed
``input_size``        ``rchar`` with ``input_size="rchar"`` only  bytes read (see below)
``max_rss``           ``peak_rss`` (bytes or ``274.5 MB``)        the target
===================== =========================================== ==================================

(The trace's own ``time`` column, the requested time, becomes ``time_limit_h``: ``time`` is the
submission time in every source.) ``component`` repeats ``process`` for the reports that group by it.

**Input size.** ``rchar`` (bytes read) is measured *while* the task runs: a model given it knows
something a scheduler does not have when it sizes the task. It is what Sizey uses as the input size,
so it is offered as an opt-in proxy (``input_size="rchar"``), off by default; compare both.

**Failed attempts.** A task that failed out of memory (status ``FAILED`` with exit 137, the SIGKILL of
the kernel's OOM killer under most executors) proves that its peak exceeded its request. Such a row is
kept, its peak taken as the larger of ``peak_rss`` and the request (a lower bound, flagged in
``peak_is_lower_bound``): it enters the memory history and the training targets as "at least this
much", so the per-process statistics and the models learn that this allocation was too small. Its
retry also sees it before it runs, as ``failed_memory_gb``. Other failures (no peak, or a non-memory
exit) are dropped and counted as ``status_failed`` with their lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from resource_prediction.schema import (
    BYTES_PER_GB,
    BYTES_PER_MB,
    MAX_PLAUSIBLE_BYTES,
    NEXTFLOW,
    DropCounter,
    TelemetryError,
    check_duplicates,
    parse_times,
    read_text,
)

__all__ = [
    "NEXTFLOW_REQUIRED", "OOM_EXIT_CODES", "NextflowTraceError", "is_nextflow_trace", "normalize",
    "parse_bytes", "parse_duration_hours", "read_trace",
]

#: Trace columns without which a trace cannot be used.
NEXTFLOW_REQUIRED: tuple[str, ...] = ("process", "submit", "memory")
#: Exit codes of a task killed for its memory (128 + SIGKILL).
OOM_EXIT_CODES: tuple[int, ...] = (137,)
_UNITS = {"B": 0, "KB": 1, "MB": 2, "GB": 3, "TB": 4, "PB": 5}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([KMGTP]?B)\s*$", re.IGNORECASE)
_DURATION = re.compile(r"([0-9]*\.?[0-9]+)\s*(ms|s|m|h|d)\b")
_HOURS = {"ms": 1 / 3.6e6, "s": 1 / 3600, "m": 1 / 60, "h": 1.0, "d": 24.0}


class NextflowTraceError(TelemetryError):
    """A trace that cannot be used: the message names the file, the column or the rows."""


def is_nextflow_trace(columns: Iterable[str]) -> bool:
    """Whether a header is a Nextflow trace's (it has ``process`` and ``submit``)."""
    return NEXTFLOW.signature <= set(columns)


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
    (``errors="raise"``) or becomes NaN (``errors="coerce"``, for the reader to drop and count).

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
    if bad.empty or errors == "coerce":
        return numbers
    lines = ", ".join(str(values.index.get_loc(i) + 2) for i in bad[:5])
    raise NextflowTraceError(
        f"{source}: column {column!r} has {bad.size} value(s) that are neither bytes nor a size"
        f" like '4 GB' (file lines {lines}): {values[bad].head(3).tolist()}"
    )


def parse_duration_hours(values: pd.Series) -> pd.Series:
    """Hours from milliseconds or Nextflow's text (``4h``, ``1d 2h``, ``30m``); missing stays NaN.

    >>> parse_duration_hours(pd.Series(["14400000", "1d 12h", "30m", "-"])).tolist()
    [4.0, 36.0, 0.5, nan]
    """
    values = _missing_dash(values)
    ms = pd.to_numeric(values, errors="coerce").astype("float64")
    hours = ms / 3.6e6
    rest = hours.isna() & values.notna()
    for i in np.flatnonzero(rest.to_numpy()):
        found = _DURATION.findall(str(values.iloc[i]))
        hours.iloc[i] = sum(float(n) * _HOURS[u] for n, u in found) if found else np.nan
    return hours


def _submit_times(values: pd.Series) -> pd.Series:
    """UTC times from epoch milliseconds or a date-time text."""
    values = _missing_dash(values)
    ms = pd.to_numeric(values, errors="coerce")
    times = pd.to_datetime(ms, unit="ms", utc=True)
    text = ms.isna() & values.notna()
    if text.any():
        times[text] = parse_times(values[text].astype("str"))
    return times


def _text(trace: pd.DataFrame, column: str) -> pd.Series:
    if column not in trace.columns:
        return pd.Series(np.nan, index=trace.index, dtype="str")
    return _missing_dash(trace[column]).astype("str")


def _number(trace: pd.DataFrame, column: str) -> pd.Series:
    if column not in trace.columns:
        return pd.Series(np.nan, index=trace.index)
    return pd.to_numeric(_missing_dash(trace[column]), errors="coerce").astype("float64")


def _failed_before(task: pd.Series, time: pd.Series, failed_gb: pd.Series) -> np.ndarray:
    """Per row: the largest request of an earlier failed (out-of-memory) attempt of the same task."""
    out = np.zeros(len(task))
    if not failed_gb.notna().any():
        return out
    order = np.argsort(time.to_numpy(dtype="datetime64[ns]", na_value=np.datetime64("NaT")), kind="stable")
    seen: dict = {}
    keys, failed = task.to_numpy(dtype=object), failed_gb.to_numpy()
    for i in order:
        out[i] = seen.get(keys[i], 0.0)
        if failed[i] == failed[i]:
            seen[keys[i]] = max(seen.get(keys[i], 0.0), failed[i])
    return out


def normalize(
    trace: pd.DataFrame, source: str = "<trace>", input_size: str | None = None, workflow: str | None = None
) -> pd.DataFrame:
    """The trace's rows (none dropped, same order and index) with the model's columns added.

    Works on the frame of :func:`read_trace` or of ``pandas.read_csv`` of a trace as it stands.
    See the module docstring for the columns and how failed attempts are kept.

    Raises
    ------
    NextflowTraceError
        A required column is missing, or ``input_size="rchar"`` without an ``rchar`` column.
    """
    missing = [c for c in NEXTFLOW_REQUIRED if c not in trace.columns]
    if missing:
        raise NextflowTraceError(f"{source}: Nextflow trace column(s) missing: {', '.join(missing)}")
    if input_size not in (None, "rchar"):
        raise ValueError(f"input_size must be None or 'rchar', got {input_size!r}")
    if input_size == "rchar" and "rchar" not in trace.columns:
        raise NextflowTraceError(f"{source}: input_size='rchar' but the trace has no 'rchar' column")
    out = trace.copy()
    time_limit = parse_duration_hours(trace["time"]) if "time" in trace.columns else np.nan
    out["time"] = _submit_times(trace["submit"])
    process = _text(trace, "process")
    out["process"] = process
    out["component"] = process
    out["scope"] = process.str.rsplit(":", n=1).str[0].where(process.str.contains(":", regex=False))
    out["tag"] = _text(trace, "tag")
    out["status"] = _text(trace, "status")
    out["cpus"] = _number(trace, "cpus")
    out["attempt"] = _number(trace, "attempt")
    out["time_limit_h"] = time_limit
    memory = parse_bytes(trace["memory"], source, "memory", errors="coerce")
    out["memreq"] = memory / BYTES_PER_MB
    out["memreq_gb"] = memory / BYTES_PER_GB
    peak = (parse_bytes(trace["peak_rss"], source, "peak_rss", errors="coerce")
            if "peak_rss" in trace.columns else pd.Series(np.nan, index=trace.index))
    exit_code = _number(trace, "exit")
    oom = (out["status"] == "FAILED").fillna(False) & exit_code.isin(OOM_EXIT_CODES)
    out["peak_is_lower_bound"] = oom.to_numpy(dtype=bool)
    out["max_rss"] = peak.where(~oom, np.fmax(peak, memory))
    out["max_rss_gb"] = out["max_rss"] / BYTES_PER_GB
    task = _text(trace, "name") if "name" in trace.columns else process + " (" + out["tag"].fillna("") + ")"
    out["failed_memory_gb"] = _failed_before(task, out["time"], out["memreq_gb"].where(oom))
    if input_size == "rchar":
        out["input_size"] = parse_bytes(trace["rchar"], source, "rchar", errors="coerce")
        out["input_size_gb"] = out["input_size"] / BYTES_PER_GB
    if workflow is not None:
        out["workflow"] = workflow
    out.attrs["schema"] = NEXTFLOW.with_options(input_size=input_size).describe()
    return out


def read_csv(path: Path) -> pd.DataFrame:
    with path.open("rb") as fh:
        header = fh.readline().decode("utf-8", errors="replace")
    sep = "\t" if header.count("\t") > header.count(",") else ","
    try:
        return pd.read_csv(path, sep=sep, dtype="str", keep_default_na=False)
    except UnicodeDecodeError:
        read_text(path)
        raise


def read_trace(path: str | Path, source: str | None = None, *, input_size: str | None = None,
               **_options) -> pd.DataFrame:
    """Read a trace file: :func:`normalize`, then drop unusable rows (counted by reason, with lines).

    Dropped: a missing or unreadable submit time or process; a failed task that was not killed for
    its memory (``status_failed``), an aborted or unfinished one (``status_<status>``); a missing,
    unreadable, non-positive or implausible peak or request; a repeated ``hash`` (the first is kept).
    Kept as evidence: out-of-memory failures (``kept_failed_oom`` in the report). The workflow name
    (the file name without a ``trace`` prefix) goes in ``workflow``.
    """
    path = Path(path)
    source = source or str(path)
    if not path.exists() or path.stat().st_size == 0:
        raise NextflowTraceError(f"{source}: no such file or the file is empty")
    trace = read_csv(path)
    if trace.empty:
        raise NextflowTraceError(f"{source}: no rows after the header")
    workflow = re.sub(r"^trace[_-]?", "", path.stem) or path.stem
    df = normalize(trace, source, input_size=input_size, workflow=workflow)
    drops = DropCounter(len(df), source)
    status = df["status"].fillna("COMPLETED")
    oom = df["peak_is_lower_bound"].to_numpy()
    submit = _missing_dash(trace["submit"])
    drops.add("missing_time", submit.isna().to_numpy())
    drops.add("unparseable_time", df["time"].isna().to_numpy())
    drops.add("missing_process", df["process"].isna().to_numpy())
    for state in sorted(set(status) - {"COMPLETED", "CACHED"}):
        drops.add(f"status_{state.lower()}", ((status == state).to_numpy() & ~oom))
    peak_raw = (_missing_dash(trace["peak_rss"]) if "peak_rss" in trace.columns
                else pd.Series(np.nan, index=trace.index))
    peak = df["max_rss"]
    drops.add("missing_peak_rss", (peak_raw.isna().to_numpy() & ~oom))
    drops.add("non_numeric_peak_rss", peak.isna().to_numpy())
    drops.add("non_positive_peak_rss", (peak <= 0).to_numpy())
    drops.add("implausible_peak_rss", (peak > MAX_PLAUSIBLE_BYTES).to_numpy())
    memory_raw = _missing_dash(trace["memory"])
    drops.add("non_numeric_memory", (df["memreq"].isna() & memory_raw.notna()).to_numpy())
    drops.add("non_positive_memory", (df["memreq"] <= 0).to_numpy())
    drops.add("implausible_memory", (df["memreq"] > MAX_PLAUSIBLE_BYTES / BYTES_PER_MB).to_numpy())
    if "hash" in trace.columns:
        ident = _missing_dash(trace["hash"]).where(~pd.Series(drops.drop, index=trace.index))
        check_duplicates(ident, drops, "duplicate_task_hash")
    report = drops.report(len(df), kept_failed_oom=int((oom & ~drops.drop).sum()))
    df = df.loc[~drops.drop].sort_values("time", kind="stable").reset_index(drop=True)
    df.attrs["load_report"] = report
    df.attrs["schema"] = NEXTFLOW.with_options(input_size=input_size).describe()
    return df


