"""Raw build telemetry: the schema, loading with checks, and the time split.

The telemetry is exported as a semicolon-separated CSV, one row per build or test job. Loading never
loses rows silently: rows that cannot be used are dropped, counted by reason, logged and reported in
``df.attrs["load_report"]``; input that cannot be used at all raises :class:`TelemetryError`.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

log = logging.getLogger(__name__)

#: The raw columns with their meaning (the seed project's data description).
RAW_COLUMNS: dict[str, str] = {
    "atom_id": "job UUID",
    "time": "UTC timestamp of the job",
    "location": "cloud location",
    "memory_fail_count": "kernel memory allocation failures during the job (outcome)",
    "branch": "branch name",
    "buildProfile": "composite arch-compiler-optimisation, e.g. linuxx86_64-gcc13-O2",
    "jobs": "distributed compile jobs",
    "localJobs": "local compile jobs on the executor",
    "makeType": "dbg, opt or rel",
    "targets": "comma-separated CMake targets",
    "component": "software component",
    "ts_phase": "build or test",
    "ts_status": "successful or unstable (outcome)",
    "cgroup": "executor cgroup UUID",
    "max_rss": "peak RSS in bytes (the target)",
    "max_cache": "peak page cache in bytes (outcome)",
    "memreq": "configured memory request in MB (what the cluster allocates today)",
}

#: Columns without which a file cannot be used for training.
REQUIRED_COLUMNS: tuple[str, ...] = (
    "time",
    "component",
    "max_rss",
    "location",
    "branch",
    "buildProfile",
    "jobs",
    "localJobs",
    "makeType",
    "targets",
    "ts_phase",
)

STRING_COLUMNS = (
    "atom_id", "location", "branch", "buildProfile", "makeType", "targets", "component",
    "ts_phase", "ts_status", "cgroup",
)
COUNT_COLUMNS = ("memory_fail_count", "jobs", "localJobs")
FLOAT_COLUMNS = ("max_rss", "max_cache", "memreq")
BYTES_PER_GB = 1024**3
MB_PER_GB = 1024


class TelemetryError(ValueError):
    """Telemetry that cannot be used: the message names the file, the column or the rows."""


def _rows(mask: np.ndarray, limit: int = 5) -> str:
    """File line numbers (header = line 1) of the first flagged rows."""
    idx = np.flatnonzero(mask)[:limit] + 2
    more = "" if mask.sum() <= limit else ", ..."
    return ", ".join(map(str, idx)) + more


def _detect_separator(path: Path) -> str:
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        header = fh.readline()
    if not header.strip():
        raise TelemetryError(f"{path}: the file is empty (no header line)")
    counts = {sep: header.count(sep) for sep in (";", ",")}
    sep = max(counts, key=counts.get)
    if counts[sep] == 0:
        raise TelemetryError(
            f"{path}: cannot detect the separator: the header has neither ';' nor ','"
            f" (got {header.strip()[:80]!r}); export the telemetry as ';'- or ','-separated CSV"
        )
    return sep


def read_raw(path: str | Path) -> pd.DataFrame:
    """Read a CSV (separator detected) or Parquet file as it stands, all CSV fields as strings."""
    path = Path(path)
    if not path.exists():
        raise TelemetryError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise TelemetryError(f"{path}: the file is empty")
    if path.suffix.lower() in {".parquet", ".pq"}:
        return pd.read_parquet(path)
    sep = _detect_separator(path)
    # Known columns are read as text and typed by coerce_raw (which counts bad values); unknown extra
    # columns keep pandas' inference.
    known_as_text = dict.fromkeys(RAW_COLUMNS, "str")
    return pd.read_csv(path, sep=sep, dtype=known_as_text, keep_default_na=True)


def _parse_times(values: pd.Series) -> pd.Series:
    """UTC timestamps: the fast ISO 8601 parser first, then any other format for what it missed."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    parsed = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
    retry = parsed.isna() & values.notna()
    if retry.any():
        parsed[retry] = pd.to_datetime(values[retry], utc=True, errors="coerce", format="mixed")
    return parsed


def coerce_raw(raw: pd.DataFrame, source: str = "<frame>") -> tuple[pd.DataFrame, dict]:
    """Type the raw columns, drop unusable rows and report them.

    Returns the typed frame (sorted by time, index reset) and the load report.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        sep_hint = ""
        if len(raw.columns) == 1:
            sep_hint = f" (the file has a single column {raw.columns[0][:60]!r}: wrong separator?)"
        raise TelemetryError(f"{source}: required column(s) missing: {', '.join(missing)}{sep_hint}")
    if raw.empty:
        raise TelemetryError(f"{source}: no rows after the header")
    df = raw.copy()
    n_read = len(df)
    for col in RAW_COLUMNS:
        if col not in df.columns:
            df[col] = np.nan
            log.warning("%s: optional column %r missing, filled with NaN", source, col)

    time_raw = df["time"]
    time = _parse_times(time_raw)
    peak = pd.to_numeric(df["max_rss"], errors="coerce")
    peak_missing = df["max_rss"].isna().to_numpy().copy()
    if pd.api.types.is_string_dtype(df["max_rss"]):
        peak_missing |= (df["max_rss"].str.strip() == "").fillna(False).to_numpy(dtype=bool)
    component = df["component"].astype("str")
    reasons = {
        "unparseable_time": time.isna().to_numpy() & time_raw.notna().to_numpy(),
        "missing_time": time_raw.isna().to_numpy(),
        "missing_max_rss": peak_missing,
        "non_numeric_max_rss": peak.isna().to_numpy() & ~peak_missing,
        "non_positive_max_rss": (peak <= 0).fillna(False).to_numpy(dtype=bool),
        "missing_component": (component.isna() | (component.str.strip() == "")).to_numpy(dtype=bool),
    }
    drop = np.zeros(n_read, dtype=bool)
    dropped: dict[str, int] = {}
    for reason, mask in reasons.items():
        fresh = mask & ~drop
        if fresh.any():
            dropped[reason] = int(fresh.sum())
            log.warning(
                "%s: dropping %d row(s), %s (file lines %s)", source, fresh.sum(), reason, _rows(fresh)
            )
        drop |= mask
    if drop.all():
        raise TelemetryError(
            f"{source}: no usable row among {n_read}: "
            + ", ".join(f"{k}={v}" for k, v in dropped.items())
        )

    df["time"] = time
    df["max_rss"] = peak
    for col in STRING_COLUMNS:
        df[col] = df[col].astype("str")
    for col in COUNT_COLUMNS:
        df[col] = pd.to_numeric(df[col], errors="coerce").round().astype("Int64")
    for col in FLOAT_COLUMNS[1:]:
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    df = df.loc[~drop]
    df = df.sort_values("time", kind="stable").reset_index(drop=True)
    df["max_rss_gb"] = df["max_rss"] / BYTES_PER_GB
    df["memreq_gb"] = df["memreq"] / MB_PER_GB
    report = {
        "source": source,
        "rows_read": n_read,
        "rows_kept": int(len(df)),
        "rows_dropped": int(drop.sum()),
        "dropped_by_reason": dropped,
    }
    log.info(
        "%s: read %d rows, kept %d, dropped %d %s",
        source, n_read, report["rows_kept"], report["rows_dropped"], dropped or "",
    )
    df.attrs["load_report"] = report
    return df, report


def load_telemetry(path: str | Path) -> pd.DataFrame:
    """Load raw telemetry (CSV with ``;`` or ``,``, or Parquet), typed and sorted by time.

    A Nextflow trace report (recognised by its ``process`` and ``peak_rss`` columns) is mapped onto
    the telemetry columns first (:mod:`resource_prediction.nextflow`; the workflow name is the file
    name without a ``trace`` prefix). Adds ``max_rss_gb`` (bytes / 1024**3) and ``memreq_gb``
    (MB / 1024). Unusable rows are dropped, counted by reason and reported in ``df.attrs["load_report"]`` and the log. Unknown extra columns
    are kept.

    Raises
    ------
    TelemetryError
        The file is missing or empty, a required column is missing, or no row is usable.
    """
    from resource_prediction.nextflow import is_nextflow_trace, nextflow_to_telemetry

    path = Path(path)
    raw = read_raw(path)
    if is_nextflow_trace(raw.columns):
        workflow = re.sub(r"^trace[_-]?", "", path.stem) or path.stem
        raw = nextflow_to_telemetry(raw, source=str(path), workflow=workflow)
    df, _ = coerce_raw(raw, source=str(path))
    return df


def save_telemetry(df: pd.DataFrame, path: str | Path) -> Path:
    """Write raw telemetry columns (and any extra columns) as ``;`` CSV or Parquet by extension."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = df.drop(columns=[c for c in ("max_rss_gb", "memreq_gb") if c in df.columns])
    if path.suffix.lower() in {".parquet", ".pq"}:
        out.to_parquet(path, index=False)
    else:
        table = pa.Table.from_pandas(out, preserve_index=False)
        pa_csv.write_csv(table, path, pa_csv.WriteOptions(delimiter=";"))
    return path


def time_split(df: pd.DataFrame, test_fraction: float = 0.10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split by time: the holdout is the latest ``test_fraction`` of the jobs."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    ordered = df.sort_values("time", kind="stable")
    n_test = max(1, int(round(len(ordered) * test_fraction)))
    if n_test >= len(ordered):
        raise ValueError(f"cannot split {len(ordered)} jobs with test_fraction={test_fraction}")
    return ordered.iloc[:-n_test], ordered.iloc[-n_test:]
