"""Stateless parsing of raw telemetry columns into numpy arrays.

Everything here works on the unique values of a column (``pandas.factorize`` first, Python on the few
distinct strings, then a gather by code), so a million jobs cost a handful of hash passes, and a single
job costs microseconds. Nothing here is fitted: vocabularies, fill values and history live in
:class:`~resource_prediction.preprocessing.ModelPreprocessor`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from resource_prediction.schema import BUILD, BYTES_PER_GB, MB_PER_GB, TEMPORAL_FEATURES

#: Label of missing, malformed and (at transform time) unseen categorical values.
UNKNOWN = "unknown"
#: Raw columns every frame given to the preprocessor must have (values may be missing).
REQUIRED_COLUMNS: tuple[str, ...] = BUILD.required
#: Columns the memory history is keyed and ordered by (all that :meth:`observe` needs, with a target).
KEY_COLUMNS: tuple[str, ...] = ("time", "component", "buildProfile", "makeType")
#: The configured request: ``memreq_gb`` (GB) or, as read from CSV, ``memreq`` (MB).
MEMREQ_COLUMNS: tuple[str, ...] = ("memreq_gb", "memreq")
NS_PER_HOUR = 3_600_000_000_000
NS_PER_DAY = 24 * NS_PER_HOUR
#: Sort key of a missing time: after every real job.
NAT_SORT_KEY = np.iinfo(np.int64).max

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Frames up to this many rows are parsed with plain Python (cheaper than pandas' per-call overhead).
SMALL_FRAME = 32


def check_columns(df: pd.DataFrame, required: Iterable[str], *, memreq: bool = True) -> None:
    """Raise ``ValueError`` naming every required column missing from ``df``."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame of raw telemetry, got {type(df).__name__}")
    missing = [repr(c) for c in required if c not in df.columns]
    if memreq and not any(c in df.columns for c in MEMREQ_COLUMNS):
        missing.append("'memreq' (MB) or 'memreq_gb'")
    if missing:
        raise ValueError(
            f"required raw column(s) missing from the input: {', '.join(missing)}; "
            f"got columns {list(df.columns)[:20]}"
        )


def _label(value) -> str:
    """String label of a raw categorical value; missing or blank values are ``unknown``."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return UNKNOWN
    return str(value).strip() or UNKNOWN


def column(df: pd.DataFrame, name: str) -> np.ndarray | pd.api.extensions.ExtensionArray:
    """The values of column ``name`` as an array, without building a Series.

    Uses pandas' private ``DataFrame._get_column_array``, kept for speed and measured (pandas 3.1,
    a one-row raw frame, all 17 columns): 23 us against 277 us for the public ``df[name].array``,
    which matters for online transforms (2 ms budget per job); that public route is the fallback.
    """
    loc = df.columns.get_loc(name)
    if not isinstance(loc, int):
        raise ValueError(f"column {name!r} appears more than once in the input")
    getter = getattr(df, "_get_column_array", None)
    return getter(loc) if getter is not None else df[name].array


def _objects(values) -> list:
    """Python objects of a short array (``to_numpy(dtype=object)`` is the cheap route for Arrow)."""
    if isinstance(values, np.ndarray):
        return values.tolist()
    return values.to_numpy(dtype=object).tolist()


def factorize_labels(values) -> tuple[np.ndarray, list[str]]:
    """Codes and distinct string labels of an array; missing or blank values become ``unknown``.

    Labels are unique (values whose string forms coincide share a code) and codes are never -1.
    """
    canon: dict[str, int] = {}
    if len(values) <= SMALL_FRAME:  # a few jobs (online use): plain Python beats pandas' overhead
        codes = np.fromiter(
            (canon.setdefault(_label(v), len(canon)) for v in _objects(values)),
            dtype=np.intp, count=len(values),
        )
        return codes, list(canon)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    remap = np.empty(len(uniques) + 1, dtype=np.intp)
    for i, value in enumerate([*uniques.tolist(), None]):
        remap[i] = canon.setdefault(_label(value), len(canon))
    return remap[codes], list(canon)


def factorize_ints(values: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Codes and distinct values (in order of appearance) of an integer array."""
    if len(values) <= SMALL_FRAME:
        seen: dict[int, int] = {}
        codes = np.fromiter((seen.setdefault(v, len(seen)) for v in values.tolist()), dtype=np.intp,
                            count=len(values))
        return codes, list(seen)
    codes, uniques = pd.factorize(values)
    return codes, uniques.tolist()


def to_float(values) -> np.ndarray:
    """A numeric array (nullable ints, floats or strings) as a new float64 array, non-numbers NaN."""
    if not pd.api.types.is_numeric_dtype(values.dtype):
        values = pd.to_numeric(values, errors="coerce")
    if isinstance(values, np.ndarray):
        return values.astype(np.float64)
    return np.array(values.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)


def time_to_ns(values) -> np.ndarray:
    """Timestamps (datetime, tz-aware or naive = UTC, or ISO strings) as int64 ns since the epoch.

    Missing times get :data:`NAT_SORT_KEY`. Values that are present but not timestamps raise a
    ``ValueError`` naming the column.
    """
    dtype = values.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
        ns = pd.array(values).as_unit("ns").asi8.copy()
    else:
        present = ~pd.isna(values)
        parsed = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
        bad = parsed.isna() & present
        if bad.any():
            parsed = pd.to_datetime(values, utc=True, errors="coerce", format="mixed")
            bad = parsed.isna() & present
        if bad.any():
            raise ValueError(
                f"column 'time' has {int(bad.sum())} value(s) that are not timestamps, "
                f"e.g. {values[np.flatnonzero(bad)[0]]!r}"
            )
        ns = parsed.as_unit("ns").asi8.copy()
    ns[ns == np.iinfo(np.int64).min] = NAT_SORT_KEY
    return ns


def _iso_weeks_in_year(year: np.ndarray) -> np.ndarray:
    def p(y):
        return (y + y // 4 - y // 100 + y // 400) % 7

    return 52 + ((p(year) == 4) | (p(year - 1) == 3))


def _temporal_small(ns: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`temporal_features` for a few rows with the standard library (numpy's datetime casts
    cost more than the whole computation for one job)."""
    rows = []
    for t in ns.tolist():
        if t == NAT_SORT_KEY:
            rows.append((np.nan,) * 5)
            continue
        d = _EPOCH + timedelta(microseconds=t // 1000)
        rows.append((d.year, d.month, d.weekday(), d.hour, d.isocalendar()[1]))
    cols = np.array(rows, dtype=np.float64).reshape(-1, 5).T
    return dict(zip(TEMPORAL_FEATURES, cols, strict=True))


def temporal_features(ns: np.ndarray) -> dict[str, np.ndarray]:
    """Year, month, day of week (Monday 0), hour and ISO week (UTC); NaN where the time is missing."""
    if ns.size <= SMALL_FRAME:
        return _temporal_small(ns)
    ok = ns != NAT_SORT_KEY
    t = np.where(ok, ns, 0)
    day = t // NS_PER_DAY
    dow = (day + 3) % 7  # 1970-01-01 was a Thursday
    dates = day.astype("datetime64[D]")
    year_start = dates.astype("datetime64[Y]")
    year = year_start.astype(np.int64) + 1970
    month = dates.astype("datetime64[M]").astype(np.int64) % 12 + 1
    doy = day - year_start.astype("datetime64[D]").astype(np.int64) + 1
    week = (doy - (dow + 1) + 10) // 7
    week = np.where(week < 1, _iso_weeks_in_year(year - 1),
                    np.where(week > _iso_weeks_in_year(year), 1, week))
    out = (year, month, dow, (t // NS_PER_HOUR) % 24, week)
    return {k: np.where(ok, v, np.nan) for k, v in zip(TEMPORAL_FEATURES, out, strict=True)}


def split_build_profile(profile: str) -> tuple[str, str, str]:
    """``arch-compiler-optimisation`` into its three parts; malformed profiles give ``unknown`` parts.

    An architecture may itself contain ``-`` (the last two fields are compiler and optimisation).

    >>> split_build_profile("linuxx86_64-gcc13-O2")
    ('linuxx86_64', 'gcc13', 'O2')
    >>> split_build_profile("gcc13O2")
    ('unknown', 'unknown', 'unknown')
    """
    parts = [p.strip() for p in profile.split("-")]
    if profile == UNKNOWN or len(parts) < 3 or not all(parts):
        return UNKNOWN, UNKNOWN, UNKNOWN
    return "-".join(parts[:-2]), parts[-2], parts[-1]


def split_branch(branch: str) -> tuple[str, float]:
    """Branch prefix (trailing digits and underscores removed) and number (NaN when it has none).

    Several trailing numbers read as a version: ``release_24_3`` gives 24.003.

    >>> split_branch("feature_1234")
    ('feature', 1234.0)
    >>> split_branch("release_24_3")
    ('release', 24.003)
    >>> split_branch("main")
    ('main', nan)
    """
    prefix = branch.rstrip("0123456789_")
    groups = [g for g in branch[len(prefix):].split("_") if g]  # the suffix is digits and "_"
    if len(groups) == 1:
        return prefix or UNKNOWN, float(groups[0])
    number = sum(int(g) / 1000.0**i for i, g in enumerate(groups)) if groups else np.nan
    return prefix or UNKNOWN, float(number)


def parse_targets(targets: str, heavy: frozenset[str]) -> tuple[float, float, float]:
    """Number of targets, whether ``dist`` is one of them, number of heavy targets (NaNs if unknown)."""
    if targets == UNKNOWN:
        return np.nan, np.nan, np.nan
    items = {t.strip() for t in targets.split(",")} - {""}
    return float(len(items)), float("dist" in items), float(len(items & heavy))


def target_gb(df: pd.DataFrame) -> np.ndarray | None:
    """Peak memory in GB from ``max_rss_gb`` or ``max_rss`` (bytes), or ``None`` without either.

    Non-positive peaks are unknown (NaN): they never enter the history.
    """
    if "max_rss_gb" in df.columns:
        peak = to_float(column(df, "max_rss_gb"))
    elif "max_rss" in df.columns:
        peak = to_float(column(df, "max_rss")) / BYTES_PER_GB
    else:
        return None
    peak[~(peak > 0)] = np.nan
    return peak


def memreq_gb(df: pd.DataFrame) -> np.ndarray:
    """Configured request in GB from ``memreq_gb`` or ``memreq`` (MB)."""
    if "memreq_gb" in df.columns:
        return to_float(column(df, "memreq_gb"))
    return to_float(column(df, "memreq")) / MB_PER_GB
