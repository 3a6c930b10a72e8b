"""Slurm accounting (``sacct``) as telemetry: one row per job, its steps folded in.

``sacct --parsable2`` writes ``|``-separated fields (``--parsable`` adds a trailing ``|``; other
delimiters and headerless exports need ``delimiter=`` / ``fields=``). Each job has a row
(``123``, array tasks ``123_4``) and rows for its steps (``123.batch``, ``123.extern``, ``123.0``);
:func:`normalize` folds the steps into their job:

* **peak** (``max_rss``, bytes): the largest ``MaxRSS`` over the job and its steps. ``MaxRSS`` is the
  largest task's resident set: for a step that runs several tasks on one node, the node's peak is
  higher. Suffixes ``K``, ``M``, ``G``, ``T``, ``P`` are powers of 1024; a bare number is bytes.
* **request** (``memreq``, MB per node): ``ReqMem`` in its old per-CPU (``4000Mc``: times the CPUs per
  node, ``NCPUS / NNodes``) and per-node (``100Gn``) forms, and the newer form without a suffix
  (``32G``: the job's total, as in ``ReqTRES`` ``mem=``, divided by ``NNodes``). A bare number is MB.
* ``State`` (``CANCELLED by 123`` reads as ``CANCELLED``): ``COMPLETED`` jobs are kept;
  ``OUT_OF_MEMORY`` jobs failed at their request, which proves the peak exceeded it: they are kept
  with the larger of ``MaxRSS`` and the request as the peak, flagged ``peak_is_lower_bound``.
  ``FAILED``, ``CANCELLED`` and ``TIMEOUT`` jobs are kept when they ran long enough to record a peak
  (the peak until they stopped), dropped as ``missing_max_rss`` otherwise; unfinished jobs
  (``PENDING``, ``RUNNING``, ...) and node failures are dropped as ``state_<state>``.
* ``Submit`` (read as UTC) is the time; ``Timelimit`` (``[D-]HH:MM:SS``, ``MM:SS``) becomes
  ``time_limit_h``; ``JobName``, ``User``, ``Account`` and ``Partition`` are group keys and features;
  ``NCPUS`` (or ``AllocCPUS`` / ``ReqCPUS``) and ``NNodes`` (or ``AllocNodes`` / ``ReqNodes``) features.

Every dropped job is counted by reason with its file line; repeated job rows keep the first.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from resource_prediction.schema import (
    BYTES_PER_GB,
    BYTES_PER_MB,
    MAX_PLAUSIBLE_BYTES,
    MAX_PLAUSIBLE_MB,
    SLURM,
    DropCounter,
    TelemetryError,
    check_duplicates,
    parse_times,
    read_text,
)

__all__ = ["KEPT_STATES", "SlurmError", "normalize", "parse_memory", "parse_timelimit_hours",
           "read_sacct", "sniff"]

#: States whose jobs are kept (the others are dropped and counted as ``state_<state>``).
KEPT_STATES = frozenset({"COMPLETED", "OUT_OF_MEMORY", "FAILED", "CANCELLED", "TIMEOUT"})
_POWER = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5}
_MEMORY = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([KMGTP]?)([cn]?)\s*$", re.IGNORECASE)
#: Canonical spelling of the fields the reader uses (sacct's header is case-insensitive).
_FIELDS = ("JobID", "JobName", "User", "Account", "Partition", "State", "Submit", "Timelimit", "NCPUS",
           "AllocCPUS", "ReqCPUS", "NNodes", "AllocNodes", "ReqNodes", "ReqMem", "MaxRSS", "ExitCode")
_CANON = {f.lower(): f for f in _FIELDS}
_DELIMITERS = ("|", "\u2603", ";", ",", "\t")


class SlurmError(TelemetryError):
    """An ``sacct`` export that cannot be used: the message names the file, the field or the rows."""


def parse_memory(values: pd.Series, default_power: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Bytes and the per-CPU / per-node flag (``c``, ``n`` or ``""``) of sacct sizes.

    A bare number is in ``1024 ** default_power`` bytes (MB for ``ReqMem``; ``0`` for bytes).
    Unreadable values are NaN.

    >>> b, f = parse_memory(pd.Series(["4000Mc", "100Gn", "32G", "114944K", ""]))
    >>> (b / 1024**2).tolist(), f.tolist()
    ([4000.0, 102400.0, 32768.0, 112.25, nan], ['c', 'n', '', '', ''])
    """
    parts = values.astype("str").str.extract(_MEMORY)
    power = parts[1].fillna("").str.upper().map(_POWER).astype("float64")
    power = power.where(parts[1].fillna("") != "", float(default_power))
    size = parts[0].astype("float64") * 1024.0**power
    return size.to_numpy(dtype=np.float64), parts[2].fillna("").str.lower().to_numpy(dtype=object)


def parse_timelimit_hours(values: pd.Series) -> np.ndarray:
    """Hours of sacct durations ``[D-][HH:]MM:SS``; ``UNLIMITED`` and unreadable values are NaN.

    >>> parse_timelimit_hours(pd.Series(["8-00:00:00", "19:50:00", "30:00", "UNLIMITED"])).tolist()
    [192.0, 19.833333333333332, 0.5, nan]
    """
    parts = values.astype("str").str.extract(r"^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)$")
    days, hours, minutes, seconds = (parts[i].astype("float64") for i in range(4))
    total = days.fillna(0) * 24 + hours.fillna(0) + minutes / 60 + seconds / 3600
    return total.to_numpy(dtype=np.float64)


def sniff(path: Path) -> str | None:
    """``"slurm"`` when a file's first line is an sacct header or an sacct job row, else None."""
    if path.suffix.lower() in {".parquet", ".pq"} or not path.is_file():
        return None
    with path.open("rb") as fh:
        first = fh.readline().decode("utf-8", errors="replace").strip()
    for delim in _DELIMITERS[:2]:
        fields = first.split(delim)
        if len(fields) < 3:
            continue
        names = {f.strip().lower() for f in fields}
        if {"jobid", "reqmem"} <= names or {"jobid", "jobidraw"} & names:
            return "slurm"
        if delim == "\u2603" or re.fullmatch(r"\d+(_\d+)?(\.\w+)?", fields[0]) or fields[0] in (
            "COMPLETED", "OUT_OF_MEMORY", "FAILED", "CANCELLED", "TIMEOUT"
        ):
            return "slurm"
    return None


def _column(raw: pd.DataFrame, *names: str) -> pd.Series:
    for name in names:
        if name in raw.columns:
            values = raw[name].astype("str").str.strip()
            return values.where(raw[name].notna() & (values != "") & (values != "nan"))
    return pd.Series(np.nan, index=raw.index, dtype="str")


def _number(raw: pd.DataFrame, *names: str) -> pd.Series:
    return pd.to_numeric(_column(raw, *names), errors="coerce").astype("float64")


def normalize(raw: pd.DataFrame, source: str = "<sacct>") -> pd.DataFrame:
    """One row per job (the job rows' index and order) with the steps folded in and the model's
    columns added; see the module docstring. Steps whose job row is absent are left out (counted
    in ``attrs["steps_without_job"]``).

    Raises
    ------
    SlurmError
        ``JobID`` is missing, or neither ``ReqMem`` nor ``MaxRSS`` is there.
    """
    raw = raw.rename(columns={c: _CANON.get(str(c).strip().lower(), c) for c in raw.columns})
    missing = [c for c in ("JobID", "ReqMem", "MaxRSS", "Submit") if c not in raw.columns]
    if missing:
        raise SlurmError(f"{source}: sacct field(s) missing: {', '.join(missing)} (got {list(raw.columns)[:10]})")
    job_id = raw["JobID"].astype("str").str.strip()
    job_of = job_id.str.split(".", n=1).str[0]
    is_job = ~job_id.str.contains(".", regex=False)
    rss, _ = parse_memory(_column(raw, "MaxRSS"), default_power=0)
    peak = pd.Series(rss, index=raw.index).groupby(job_of.to_numpy()).max()
    out = raw.loc[is_job].copy()
    jobs = job_of[is_job]
    out["JobID"] = jobs
    out.attrs["steps_without_job"] = int((~job_of.isin(set(jobs))).sum())
    state = _column(out, "State").str.split(" ", n=1).str[0].str.upper()
    out["State"] = state
    ncpus, nnodes = _number(out, "NCPUS", "AllocCPUS", "ReqCPUS"), _number(out, "NNodes", "AllocNodes", "ReqNodes")
    out["NCPUS"], out["NNodes"] = ncpus, nnodes
    for col in ("JobName", "User", "Account", "Partition"):
        out[col] = _column(out, col)
    out["component"] = out["JobName"]
    nodes = nnodes.fillna(1.0).clip(lower=1.0).to_numpy()
    size, flag = parse_memory(_column(out, "ReqMem"))
    per_node = np.where(flag == "c", size * ncpus.to_numpy() / nodes, np.where(flag == "n", size, size / nodes))
    out["memreq"] = per_node / BYTES_PER_MB
    out["memreq_gb"] = per_node / BYTES_PER_GB
    out["time"] = parse_times(_column(out, "Submit"))
    out["time_limit_h"] = parse_timelimit_hours(_column(out, "Timelimit"))
    job_peak = peak.reindex(jobs.to_numpy()).to_numpy()
    oom = (state == "OUT_OF_MEMORY").to_numpy(dtype=bool)
    job_peak = np.where(oom, np.fmax(job_peak, per_node), job_peak)
    out["peak_is_lower_bound"] = oom
    out["max_rss"] = job_peak
    out["max_rss_gb"] = job_peak / BYTES_PER_GB
    out.attrs["schema"] = SLURM.describe()
    return out


def split_export(text: str, source: str, fields, delimiter: str | None) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows of an sacct export as text fields, and the file line of each row."""
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise SlurmError(f"{source}: the file is empty")
    first = lines[0]
    delimiter = delimiter or max(_DELIMITERS, key=first.count)
    if first.count(delimiter) == 0:
        raise SlurmError(f"{source}: cannot detect the delimiter of {first[:60]!r}: pass delimiter=")
    head = [f.strip() for f in first.split(delimiter)]
    has_header = "jobid" in {h.lower() for h in head}
    if isinstance(fields, str):
        fields = [f.strip() for f in fields.split(",")]
    if has_header:
        names, body, start = head, lines[1:], 2
    elif fields:
        names, body, start = list(fields), lines, 1
    else:
        raise SlurmError(
            f"{source}: the export has no header line: pass the field order (fields=, --sacct-fields "
            f"'JobID,JobName,...' as given to sacct --format) or add the header"
        )
    rows, keep = [], []
    n = len(names)
    for i, line in enumerate(body):
        if not line.strip():
            continue
        parts = line.split(delimiter)
        if len(parts) == n + 1 and parts[-1] == "":
            parts = parts[:-1]  # --parsable's trailing delimiter
        if len(parts) != n:
            raise SlurmError(
                f"{source}: line {i + start} has {len(parts)} fields, the header {n}: wrong delimiter or fields?"
            )
        rows.append(parts)
        keep.append(i + start)
    if names and names[-1] == "" and all(r[-1] == "" for r in rows):
        names, rows = names[:-1], [r[:-1] for r in rows]
    frame = pd.DataFrame(rows, columns=names, dtype="str")
    return frame, np.asarray(keep, dtype=np.int64)


def read_sacct(path: str | Path, source: str | None = None, *, fields=None, delimiter: str | None = None,
               **_options) -> pd.DataFrame:
    """Read an sacct export: steps folded into jobs, unusable jobs dropped (counted, with lines).

    Parameters
    ----------
    path : str or Path
        The export (``sacct --parsable2`` with or without ``--noheader``).
    fields : list of str or str, optional
        Field order of a headerless export (``"JobID,JobName,State,..."``).
    delimiter : str, optional
        Field delimiter (default: detected among ``|``, ``☃``, ``;``, ``,``, tab).
    """
    path = Path(path)
    source = source or str(path)
    if not path.exists() or path.stat().st_size == 0:
        raise SlurmError(f"{source}: no such file or the file is empty")
    raw, lines = split_export(read_text(path, source), source, fields, delimiter)
    df = normalize(raw, source)
    job_lines = lines[df.index.to_numpy()]
    drops = DropCounter(len(df), source, job_lines)
    drops.add("missing_time", df["time"].isna().to_numpy())
    state = df["State"].fillna("UNKNOWN")
    for name in sorted(set(state) - KEPT_STATES):
        drops.add(f"state_{name.lower()}", (state == name).to_numpy())
    peak, request = df["max_rss"], df["memreq"]
    drops.add("missing_max_rss", ~(peak > 0).to_numpy())
    drops.add("implausible_max_rss", (peak > MAX_PLAUSIBLE_BYTES).to_numpy())
    drops.add("non_positive_reqmem", (request <= 0).to_numpy())
    drops.add("implausible_reqmem", (request > MAX_PLAUSIBLE_MB).to_numpy())
    check_duplicates(df["JobID"].where(~pd.Series(drops.drop, index=df.index)), drops)
    report = drops.report(
        len(df), rows_in_file=len(raw), steps_folded=int(len(raw) - len(df)),
        steps_without_job=df.attrs["steps_without_job"],
        kept_out_of_memory=int((df["peak_is_lower_bound"].to_numpy() & ~drops.drop).sum()),
    )
    df = df.loc[~drops.drop].sort_values("time", kind="stable").reset_index(drop=True)
    df.attrs["load_report"] = report
    df.attrs["schema"] = SLURM.describe()
    return df
