"""What a telemetry source is: one :class:`Schema` per format, and what every reader shares.

A schema declares, for one source (build telemetry, Nextflow trace reports, Slurm accounting), which
columns of the frame its reader returns play which part:

* the time column (``time``, UTC, when the memory had to be asked for), the target (``max_rss``,
  bytes, with ``max_rss_gb``) and the configured request (``memreq``, MB, with ``memreq_gb``): every
  reader writes these canonical columns, so metrics, baselines and the replay work on any source;
* the history group levels: ``fine`` (the task type and what makes its peaks alike) and ``coarse``
  (a coarser group), then all jobs;
* the categorical and numeric features known **before** a job runs, and the calendar features;
* the raw header columns that identify the format (``signature``).

:class:`~resource_prediction.preprocessing.ModelPreprocessor` reads the schema instead of literal
column names. Readers (:mod:`resource_prediction.data` for build telemetry,
:mod:`resource_prediction.nextflow`, :mod:`resource_prediction.slurm`) sit below nothing but this
module; :class:`DropCounter` gives them one way to drop rows: counted by reason, with file lines.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

BYTES_PER_GB = 1024**3
BYTES_PER_MB = 1024**2
MB_PER_GB = 1024
#: Physically implausible values: a peak above 1 PB, a request above 1 PB (in MB).
MAX_PLAUSIBLE_BYTES = 1024.0**5
MAX_PLAUSIBLE_MB = 1024.0**3
FORMATS: tuple[str, ...] = ("build", "nextflow", "slurm")
#: Calendar features of the job's time (UTC), in the order the feature code computes them.
TEMPORAL_FEATURES: tuple[str, ...] = ("year", "month", "day_of_week", "hour", "week_of_year")


class TelemetryError(ValueError):
    """Telemetry that cannot be used: the message names the file, the column or the rows."""


@dataclass(frozen=True)
class Schema:
    """How one telemetry source maps onto the model's inputs (see the module docstring).

    Parameters
    ----------
    name : str
        The format name (``build``, ``nextflow``, ``slurm``).
    signature : frozenset of str
        Raw header columns that identify the format, known before a job runs (so rows to predict,
        without the peak, are recognised too).
    task : str
        The task-type column (history key, ``process`` for Nextflow).
    fine, coarse : tuple of str
        Key columns of the fine and coarse history groups.
    categorical, numeric : tuple of str
        Feature columns known before the job runs (numeric ones in their reader's units).
    temporal : tuple of str
        Calendar features of ``time`` (among :data:`TEMPORAL_FEATURES`).
    raw_columns : tuple of str
        Columns hashed in a model's training-data fingerprint.
    required : tuple of str
        Columns a frame must have for the features (values may be missing); empty: the time and the
        group keys.
    drop_constant : bool
        Leave out features that have a single value in the training data (workflow traces, where a
        field such as ``attempt`` may never vary); build telemetry keeps its fixed feature set.
    options : dict
        Reading options the model must reuse on new rows (``input_size="rchar"``).
    trend : bool
        Whether the job-adjusted level's static part has a time trend per task type by default
        (:class:`~resource_prediction.features.static_level.StaticLevel`'s ``trend``): a component's
        builds grow with its code base over months, while the order of one workflow run's tasks
        is no growth (on the Nextflow traces' cold-start draws a trend made the model worse).
    level_choice : {"global", "coarse", "fine"}
        Default grouping within which the job-adjusted level chooses its candidates
        (:class:`~resource_prediction.features.level.JobLevel`'s ``choose_within``): a build's
        component and build type; one choice for all of a workflow trace's tasks.
    level_request : bool
        Whether the job-adjusted level's static part reads the configured request by default. A
        build's request is one setting per component and build type, revised now and then with
        whatever headroom its owner chose: the component and build type already price its level,
        and the request only adds the headroom's changes (on 2,000 generated jobs the level erred
        less without it). A workflow's request per process is the best prior of a process type not
        seen yet.
    level_memories : tuple of float
        Default EWM weights of the job-adjusted level's longer-memory candidates (:class:`~resource_
        prediction.features.level.JobLevel`'s ``memories``): a build's component keeps its level
        for weeks, and a mean over about 19 peaks (weight 0.1) is less noisy than over 6; on the
        Nextflow traces' cold-start draws the longer memory made the model worse.
    level_combine : {"choose", "average"}
        Default way the job-adjusted level uses its candidates (:class:`~resource_prediction.
        features.level.JobLevel`'s ``combine``): a build's weighted mean of them (cost-aware model,
        expected cost against the oracle's: 34 generated sets 1.135 to 1.131, 22 better and 11
        worse; ``book/features.md``); on the Nextflow traces' cold-start draws where the location
        trees compete the mean made the model worse, so workflow traces and Slurm choose one.
    level_interactions : tuple of (str, str)
        Pairs of categorical features whose combinations the job-adjusted level's static part may
        price (:class:`~resource_prediction.features.static_level.StaticLevel`'s ``interactions``; kept
        where they lower its errors on later jobs): a component's own effect of its build type
        and of its architecture.
    """

    name: str
    signature: frozenset[str]
    task: str
    fine: tuple[str, ...]
    coarse: tuple[str, ...]
    categorical: tuple[str, ...]
    numeric: tuple[str, ...]
    temporal: tuple[str, ...]
    raw_columns: tuple[str, ...]
    drop_constant: bool = True
    required: tuple[str, ...] = ()
    options: dict = field(default_factory=dict, compare=False, hash=False)
    trend: bool = False
    level_choice: str = "global"
    level_request: bool = True
    level_memories: tuple[float, ...] = ()
    level_combine: str = "choose"
    level_interactions: tuple[tuple[str, str], ...] = ()

    def with_options(self, **options) -> Schema:
        """A copy with reading options (``None`` values are left out)."""
        kept = {k: v for k, v in options.items() if v is not None}
        return Schema(**{**self.__dict__, "options": {**self.options, **kept}})

    def describe(self) -> dict:
        """JSON-able summary (stored in a model's metadata)."""
        return {"format": self.name, "options": dict(self.options), "task": self.task,
                "fine": list(self.fine), "coarse": list(self.coarse)}


BUILD = Schema(
    name="build",
    signature=frozenset({"component", "buildProfile", "makeType"}),
    task="component",
    fine=("component", "architecture", "compiler", "optimisation", "makeType"),
    coarse=("component", "makeType"),
    categorical=("location", "component", "makeType", "ts_phase", "architecture", "compiler",
                 "optimisation", "branch_prefix"),
    numeric=("branch_number", "n_targets", "has_dist", "jobs", "localJobs", "memreq_gb"),
    temporal=TEMPORAL_FEATURES,
    raw_columns=("atom_id", "time", "location", "memory_fail_count", "branch", "buildProfile", "jobs",
                 "localJobs", "makeType", "targets", "component", "ts_phase", "ts_status", "cgroup",
                 "max_rss", "max_cache", "memreq"),
    drop_constant=False,
    trend=True,
    level_choice="coarse",
    level_request=False,
    level_memories=(0.1,),
    level_combine="average",
    level_interactions=(("component", "makeType"), ("component", "architecture")),
    required=("time", "location", "component", "buildProfile", "makeType", "ts_phase", "branch", "targets",
              "jobs", "localJobs"),
)

NEXTFLOW = Schema(
    name="nextflow",
    signature=frozenset({"process", "submit"}),
    task="process",
    fine=("process",),
    coarse=("scope",),
    categorical=("process", "scope", "tag"),
    numeric=("cpus", "memreq_gb", "attempt", "time_limit_h", "failed_memory_gb", "input_size_gb"),
    temporal=(),
    raw_columns=("hash", "time", "process", "tag", "cpus", "memreq", "attempt", "time_limit_h",
                 "input_size", "max_rss", "status"),
)

SLURM = Schema(
    name="slurm",
    signature=frozenset({"JobID", "ReqMem"}),
    task="JobName",
    fine=("JobName", "User"),
    coarse=("Partition", "User"),
    categorical=("JobName", "User", "Account", "Partition"),
    numeric=("NCPUS", "NNodes", "memreq_gb", "time_limit_h"),
    temporal=("day_of_week", "hour"),
    raw_columns=("JobID", "time", "JobName", "User", "Account", "Partition", "NCPUS", "NNodes",
                 "memreq", "time_limit_h", "max_rss", "State"),
)

SCHEMAS: dict[str, Schema] = {s.name: s for s in (BUILD, NEXTFLOW, SLURM)}


def get_schema(schema: str | Schema) -> Schema:
    """The schema of a format name (a :class:`Schema` is returned as is)."""
    if isinstance(schema, Schema):
        return schema
    if schema not in SCHEMAS:
        raise ValueError(f"unknown telemetry format {schema!r}; known: {', '.join(SCHEMAS)}")
    return SCHEMAS[schema]


def detect_format(columns: Iterable[str], source: str = "<frame>") -> str:
    """The format whose signature columns a header (raw or as read) has; build telemetry otherwise.

    Raises :class:`TelemetryError` when the header matches more than one format.
    """
    cols = set(columns)
    found = [s.name for s in (NEXTFLOW, SLURM) if s.signature <= cols]
    if len(found) > 1:
        raise TelemetryError(f"{source}: the header matches several formats ({found}); pass format=")
    return found[0] if found else "build"


def frame_schema(df: pd.DataFrame, source: str = "<frame>") -> Schema:
    """The schema of a frame: the one its reader recorded in ``attrs["schema"]`` (with the reading
    options), else the format its columns show (a Nextflow frame with ``input_size`` was read with
    ``input_size="rchar"``)."""
    recorded = df.attrs.get("schema")
    if isinstance(recorded, dict) and recorded.get("format") in SCHEMAS:
        return SCHEMAS[recorded["format"]].with_options(**recorded.get("options", {}))
    schema = SCHEMAS[detect_format(df.columns, source)]
    if schema is NEXTFLOW and "input_size" in df.columns:  # read with the rchar proxy
        schema = schema.with_options(input_size="rchar")
    return schema


def is_normalized(df: pd.DataFrame) -> bool:
    """Whether a frame is a reader's output (it has the canonical ``memreq_gb``), not raw rows."""
    return "memreq_gb" in df.columns


def file_lines(mask: np.ndarray, lines: np.ndarray | None = None, limit: int = 5) -> str:
    """File line numbers of the first flagged rows (header = line 1 unless ``lines`` is given)."""
    idx = np.flatnonzero(mask)
    shown = (lines[idx[:limit]] if lines is not None else idx[:limit] + 2).tolist()
    return ", ".join(map(str, shown)) + ("" if idx.size <= limit else ", ...")


class DropCounter:
    """Rows to drop, counted by reason (a row counts under its first reason), with their lines.

    Parameters
    ----------
    n : int
        Number of rows.
    source : str
        File name for messages.
    lines : ndarray of int, optional
        File line of each row (default: row ``i`` is on line ``i + 2``, under a header).
    """

    def __init__(self, n: int, source: str, lines: np.ndarray | None = None):
        self.drop = np.zeros(n, dtype=bool)
        self.source = source
        self.lines = lines
        self.dropped: dict[str, int] = {}
        self.examples: dict[str, str] = {}

    def add(self, reason: str, mask) -> None:
        """Flag the rows of ``mask`` (not flagged yet) under ``reason``, logging their lines."""
        mask = np.asarray(mask, dtype=bool)
        fresh = mask & ~self.drop
        if fresh.any():
            self.dropped[reason] = self.dropped.get(reason, 0) + int(fresh.sum())
            self.examples[reason] = file_lines(fresh, self.lines)
            log.warning("%s: dropping %d row(s), %s (file lines %s)", self.source, fresh.sum(), reason,
                        self.examples[reason])
        self.drop |= mask

    def report(self, n_read: int, **extra) -> dict:
        """The load report; raises :class:`TelemetryError` when no row is left."""
        if self.drop.all():
            raise TelemetryError(
                f"{self.source}: no usable row among {n_read}: "
                + ", ".join(f"{k}={v} (lines {self.examples[k]})" for k, v in self.dropped.items())
            )
        report = {
            "source": self.source,
            "rows_read": int(n_read),
            "rows_kept": int((~self.drop).sum()),
            "rows_dropped": int(self.drop.sum()),
            "dropped_by_reason": dict(self.dropped),
            "dropped_lines": dict(self.examples),
            **extra,
        }
        log.info("%s: read %d rows, kept %d, dropped %d %s", self.source, n_read, report["rows_kept"],
                 report["rows_dropped"], self.dropped or "")
        return report


def parse_times(values: pd.Series) -> pd.Series:
    """UTC timestamps: the fast ISO 8601 parser first, then any other format for what it missed."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    parsed = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
    retry = parsed.isna() & values.notna()
    if retry.any():
        parsed[retry] = pd.to_datetime(values[retry], utc=True, errors="coerce", format="mixed")
    return parsed


def read_text(path, source: str | None = None) -> str:
    """A file's text as UTF-8; bytes that are not UTF-8 raise :class:`TelemetryError` with the line."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise TelemetryError(
            f"{source or path}: line {line} has bytes that are not UTF-8 ({data[exc.start:exc.end]!r} at"
            f" byte {exc.start}); re-export the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        ) from None


def check_duplicates(ids: pd.Series, drops: DropCounter, reason: str = "duplicate_job_id") -> None:
    """Flag every repeat of an id after its first row (missing ids are not duplicates)."""
    dup = ids.duplicated(keep="first") & ids.notna()
    drops.add(reason, dup.to_numpy(dtype=bool))
