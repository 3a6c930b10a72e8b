"""Loading telemetry of any source, build telemetry's own reader, the time split and the default data.

:func:`load_telemetry` reads a file of one of the :data:`~resource_prediction.schema.FORMATS` (detected
from the header with ``format="auto"``) through its reader: build telemetry here (:func:`coerce_raw`),
Nextflow trace reports in :mod:`resource_prediction.nextflow`, Slurm accounting in
:mod:`resource_prediction.slurm`. Loading never loses rows silently: rows that cannot be used are
dropped, counted by reason, logged with their file lines and reported in ``df.attrs["load_report"]``;
input that cannot be used at all raises :class:`~resource_prediction.schema.TelemetryError`.

Build telemetry is exported as a semicolon-separated CSV, one row per build or test job.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from resource_prediction import nextflow, slurm
from resource_prediction.paths import ArtifactPaths
from resource_prediction.schema import (
    BUILD,
    BYTES_PER_GB,
    FORMATS,
    MAX_PLAUSIBLE_BYTES,
    MAX_PLAUSIBLE_MB,
    MB_PER_GB,
    DropCounter,
    Schema,
    TelemetryError,
    check_duplicates,
    detect_format,
    get_schema,
    is_normalized,
    parse_times,
    read_text,
)
from resource_prediction.synthetic import DEFAULT_N_JOBS, generate_telemetry

__all__ = [
    "RAW_COLUMNS", "REQUIRED_COLUMNS", "add_format_flags",
    "coerce_raw", "format_options",
    "detect_file_format", "ensure_default_data", "load_telemetry", "prepare_rows", "read_raw", "read_rows", "save_telemetry", "time_split",
]

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

#: Columns without which a build telemetry file cannot be used for training.
REQUIRED_COLUMNS: tuple[str, ...] = (*BUILD.required, "max_rss")

STRING_COLUMNS = (
    "atom_id", "location", "branch", "buildProfile", "makeType", "targets", "component",
    "ts_phase", "ts_status", "cgroup",
)
COUNT_COLUMNS = ("memory_fail_count", "jobs", "localJobs")


def _detect_separator(header: str, path: Path, candidates: tuple[str, ...] = (";", ",")) -> str:
    if not header.strip():
        raise TelemetryError(f"{path}: the file is empty (no header line)")
    counts = {sep: header.count(sep) for sep in candidates}
    sep = max(counts, key=counts.get)
    if counts[sep] == 0:
        raise TelemetryError(
            f"{path}: cannot detect the separator: the header has neither ';' nor ','"
            f" (got {header.strip()[:80]!r}); export the telemetry as ';'- or ','-separated CSV"
        )
    return sep


def _first_line(path: Path) -> str:
    with path.open("rb") as fh:
        return fh.readline().decode("utf-8", errors="replace")


def read_raw(path: str | Path, dtype: dict | None = None) -> pd.DataFrame:
    """Read a CSV (``;`` or ``,``, detected) or Parquet file as it stands.

    Known build columns are read as text (typed by the reader, which counts bad values); other
    columns keep pandas' inference unless ``dtype`` says otherwise. Bytes that are not UTF-8 raise
    :class:`TelemetryError` naming the file and the line.
    """
    path = Path(path)
    if not path.exists():
        raise TelemetryError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise TelemetryError(f"{path}: the file is empty")
    if path.suffix.lower() in {".parquet", ".pq"}:
        return pd.read_parquet(path)
    sep = _detect_separator(_first_line(path), path)
    dtype = dict.fromkeys(RAW_COLUMNS, "str") if dtype is None else dtype
    try:
        return pd.read_csv(path, sep=sep, dtype=dtype, keep_default_na=True)
    except UnicodeDecodeError:
        read_text(path)  # raises TelemetryError with the line
        raise


def coerce_raw(raw: pd.DataFrame, source: str = "<frame>") -> tuple[pd.DataFrame, dict]:
    """Type raw build telemetry, drop unusable rows and report them.

    Dropped (counted by reason, with file lines): unparseable or missing times, missing, non-numeric,
    non-positive or implausible peaks (above 1 PB), configured requests that are not positive or
    implausible, a missing component, and repeats of a job id (``atom_id``; the first row is kept).
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
    time = parse_times(time_raw)
    peak = pd.to_numeric(df["max_rss"], errors="coerce")
    peak_missing = df["max_rss"].isna().to_numpy().copy()
    if pd.api.types.is_string_dtype(df["max_rss"]):
        peak_missing |= (df["max_rss"].str.strip() == "").fillna(False).to_numpy(dtype=bool)
    request = pd.to_numeric(df["memreq"], errors="coerce").astype("float64")
    component = df["component"].astype("str")
    drops = DropCounter(n_read, source)
    drops.add("unparseable_time", time.isna().to_numpy() & time_raw.notna().to_numpy())
    drops.add("missing_time", time_raw.isna().to_numpy())
    drops.add("missing_max_rss", peak_missing)
    drops.add("non_numeric_max_rss", peak.isna().to_numpy() & ~peak_missing)
    drops.add("non_positive_max_rss", (peak <= 0).fillna(False).to_numpy(dtype=bool))
    drops.add("implausible_max_rss", (peak > MAX_PLAUSIBLE_BYTES).fillna(False).to_numpy(dtype=bool))
    drops.add("non_positive_memreq", (request <= 0).fillna(False).to_numpy(dtype=bool))
    drops.add("implausible_memreq", (request > MAX_PLAUSIBLE_MB).fillna(False).to_numpy(dtype=bool))
    drops.add("missing_component", (component.isna() | (component.str.strip() == "")).to_numpy(dtype=bool))
    check_duplicates(df["atom_id"].where(~pd.Series(drops.drop, index=df.index)), drops)
    report = drops.report(n_read)

    df["time"] = time
    df["max_rss"] = peak
    df["memreq"] = request
    for col in STRING_COLUMNS:
        df[col] = df[col].astype("str")
    for col in COUNT_COLUMNS:
        df[col] = pd.to_numeric(df[col], errors="coerce").round().astype("Int64")
    df["max_cache"] = pd.to_numeric(df["max_cache"], errors="coerce").astype("float64")
    df = df.loc[~drops.drop]
    df = df.sort_values("time", kind="stable").reset_index(drop=True)
    df["max_rss_gb"] = df["max_rss"] / BYTES_PER_GB
    df["memreq_gb"] = df["memreq"] / MB_PER_GB
    df.attrs["load_report"] = report
    df.attrs["schema"] = BUILD.describe()
    return df, report


def _read_build(path: Path, source: str, **_options) -> pd.DataFrame:
    return coerce_raw(read_raw(path), source=source)[0]


_READERS = {"build": _read_build, "nextflow": nextflow.read_trace, "slurm": slurm.read_sacct}


def load_telemetry(
    path: str | Path,
    format: str = "auto",
    *,
    input_size: str | None = None,
    fields: list[str] | str | None = None,
    delimiter: str | None = None,
) -> pd.DataFrame:
    """Load telemetry of any source, typed, checked and sorted by time.

    Parameters
    ----------
    path : str or Path
        Build telemetry (CSV with ``;`` or ``,``, or Parquet), a Nextflow trace report, or a Slurm
        ``sacct`` export.
    format : {"auto", "build", "nextflow", "slurm"}
        ``"auto"`` detects the format from the header (:func:`~resource_prediction.schema.detect_format`;
        a headerless ``sacct`` export needs ``format="slurm"`` and ``fields``).
    input_size : {None, "rchar"}
        Nextflow only: take ``rchar`` (bytes read, measured *during* the task) as the input size
        feature. Off by default: it is not known before a task runs.
    fields, delimiter :
        Slurm only: the field order of a headerless export and its delimiter (default: detected).

    Returns
    -------
    DataFrame
        The source's own columns plus the canonical ``time`` (UTC), ``max_rss`` (bytes),
        ``max_rss_gb``, ``memreq`` (MB) and ``memreq_gb``; ``attrs["load_report"]`` counts the
        dropped rows by reason and ``attrs["schema"]`` is the source's :class:`~resource_prediction.schema.Schema`.

    Raises
    ------
    TelemetryError
        The file is missing, empty or not UTF-8, a required column is missing, or no row is usable.
    """
    path = Path(path)
    if format not in ("auto", *FORMATS):
        raise ValueError(f"format must be 'auto' or one of {FORMATS}, got {format!r}")
    if format == "auto":
        if not path.exists():
            raise TelemetryError(f"{path}: no such file")
        format = detect_file_format(path)
    return _READERS[format](path, str(path), input_size=input_size, fields=fields, delimiter=delimiter)


def detect_file_format(path: str | Path) -> str:
    """The format of a telemetry file from its first line (an sacct export without a header too)."""
    path = Path(path)
    return slurm.sniff(path) or _detect_header_format(path)


def _detect_header_format(path: Path) -> str:
    if path.suffix.lower() in {".parquet", ".pq"}:
        import pyarrow.parquet as pq

        return detect_format(pq.read_schema(path).names, str(path))
    header = _first_line(path)
    for sep in (",", ";", "\t"):
        fmt = detect_format([c.strip() for c in header.strip().split(sep)], str(path))
        if fmt != "build":
            return fmt
    return "build"


def prepare_rows(raw: pd.DataFrame, schema: str | Schema, source: str = "<rows>") -> pd.DataFrame:
    """Rows for a model of ``schema``: a reader's output as is, raw rows of the format normalised.

    Raw rows are what ``pandas.read_csv`` gives for a file of the format (a Nextflow trace, an
    ``sacct --parsable2`` export with its header, build telemetry). Nothing is dropped from them
    (a Slurm export's job steps are folded into their jobs).

    Raises
    ------
    TelemetryError
        The rows are of another format than the schema's.
    """
    schema = get_schema(schema)
    if not isinstance(raw, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame of raw rows, got {type(raw).__name__}")
    found = detect_format(raw.columns, source)
    if found != schema.name:
        raise TelemetryError(
            f"{source}: this model was trained on {schema.name} telemetry but the rows look like "
            f"{found} telemetry (columns {list(raw.columns)[:8]}...): give it rows of its own format"
        )
    if schema.name == "build" and not BUILD.signature <= set(raw.columns):
        raise TelemetryError(
            f"{source}: this model was trained on build telemetry; the rows lack its columns "
            f"{sorted(BUILD.signature - set(raw.columns))} (got {list(raw.columns)[:8]})"
        )
    if schema.name == "build" or is_normalized(raw):
        return raw
    if schema.name == "nextflow":
        return nextflow.normalize(raw, source, **schema.options)
    return slurm.normalize(raw, source)


def read_rows(path: str | Path, schema: str | Schema, *, fields=None, delimiter: str | None = None
              ) -> pd.DataFrame:
    """A file's rows as they stand (nothing dropped, no target needed): jobs to predict.

    A Slurm export's job steps are still there (a model folds them); see :func:`prepare_rows`.
    """
    path = Path(path)
    name = get_schema(schema).name
    if not path.exists() or path.stat().st_size == 0:
        raise TelemetryError(f"{path}: no such file or the file is empty")
    found = detect_file_format(path)
    if found != name:
        raise TelemetryError(
            f"{path}: this model was trained on {name} telemetry but the rows look like {found} telemetry:"
            " give it rows of its own format"
        )
    if name == "nextflow" and path.suffix.lower() not in {".parquet", ".pq"}:
        return nextflow.read_csv(path)
    if name == "slurm":
        return slurm.split_export(read_text(path), str(path), fields, delimiter)[0]
    return read_raw(path, dtype={} if name != "build" else None)


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


def ensure_default_data(paths: ArtifactPaths, n_jobs: int = DEFAULT_N_JOBS, seed: int = 0) -> Path:
    """Generate the default data set once (with truth columns) and return its path."""
    target = paths.default_data
    if not target.exists():
        log.info("generating the default data: %d jobs, seed %d -> %s", n_jobs, seed, target)
        save_telemetry(generate_telemetry(n_jobs, seed=seed, with_truth=True), target)
    return target


def time_split(df: pd.DataFrame, test_fraction: float = 0.10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split by time: the holdout is the latest ``test_fraction`` of the jobs."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    ordered = df.sort_values("time", kind="stable")
    n_test = max(1, int(round(len(ordered) * test_fraction)))
    if n_test >= len(ordered):
        raise ValueError(f"cannot split {len(ordered)} jobs with test_fraction={test_fraction}")
    return ordered.iloc[:-n_test], ordered.iloc[-n_test:]


def add_format_flags(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--format``, ``--input-size``, ``--sacct-fields`` and ``--delimiter``."""
    p.add_argument("--format", dest="data_format", choices=("auto", *FORMATS), default="auto",
                   help="telemetry format of --data (default: detected from the header)")
    p.add_argument("--input-size", choices=("rchar",),
                   help="Nextflow: use rchar (bytes read, measured during the task) as the input size")
    p.add_argument("--sacct-fields", metavar="F1,F2,...",
                   help="Slurm: the field order of a headerless sacct export (as given to --format)")
    p.add_argument("--delimiter", help="Slurm: the field delimiter (default: detected)")


def format_options(args: argparse.Namespace) -> dict:
    """Keyword arguments of :func:`~resource_prediction.data.load_telemetry` from the flags."""
    return {
        "format": getattr(args, "data_format", "auto") or "auto",
        "input_size": getattr(args, "input_size", None),
        "fields": getattr(args, "sacct_fields", None),
        "delimiter": getattr(args, "delimiter", None),
    }
