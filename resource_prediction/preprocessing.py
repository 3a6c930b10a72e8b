"""Raw telemetry to model features: :class:`ModelPreprocessor`.

Models never see raw columns: the preprocessor turns the frame :func:`~resource_prediction.data.load_telemetry`
returns (or raw rows of the same columns read with ``pandas.read_csv(path, sep=";")``) into a frame of
fixed columns and dtypes that XGBoost and LightGBM take natively, or one-hot encoded for linear models.

The features follow the source's :class:`~resource_prediction.schema.Schema` (``schema``, by default
the one the frame's reader recorded, else the one its columns show). Every source gets the memory
history below, keyed by its fine and coarse groups, and its declared categorical and numeric features
known before a job runs (Nextflow: ``process``, ``scope``, ``tag``, ``cpus``, ``memreq_gb``,
``attempt``, ``time_limit_h``, ``failed_memory_gb``, ``input_size_gb`` with the ``rchar`` proxy;
Slurm: ``JobName``, ``User``, ``Account``, ``Partition``, ``NCPUS``, ``NNodes``, ``memreq_gb``,
``time_limit_h``, ``day_of_week``, ``hour``), less those with a single value in fit
(:attr:`ModelPreprocessor.dropped_features_`; the request only when no job has one). Build
telemetry, the default, has these fixed feature families (see
:attr:`ModelPreprocessor.feature_names_`):

* temporal (UTC): ``year``, ``month``, ``day_of_week`` (Monday 0), ``hour``, ``week_of_year`` (ISO);
* categorical: ``location``, ``component``, ``makeType``, ``ts_phase``, the three parts of
  ``buildProfile`` (``architecture``, ``compiler``, ``optimisation``; a malformed profile gives
  ``unknown`` parts) and ``branch_prefix`` (the branch without trailing digits and underscores);
* derived: ``branch_number`` (trailing number of the branch, -1 when it has none), ``n_targets``,
  ``has_dist``, ``jobs``, ``localJobs``, ``memreq_gb`` (the configured request, known before the job;
  NaN for a job without one);
* quantitative (``use_quant_features=True``):

  - ``build_load`` = ``localJobs x n_targets``: local compile slots times the targets they build, the
    local work in flight;
  - ``target_intensity`` = ``n_targets + n_heavy``: targets counted with heavy ones (``heavy_targets``,
    packaging targets such as ``dist``) counted twice;
  - ``debug_multiplier`` = 2 for ``dbg`` builds, 1 otherwise (debug information roughly doubles compiler
    and linker memory);
  - ``heavy_target`` = 1 if any target is heavy;
  - ``high_parallelism`` = 1 if ``localJobs`` is at least the 75th percentile of ``localJobs`` seen in fit;

* memory history (GB, from ``max_rss``), causal: each job sees only the peaks of jobs before it in time
  (ties broken by input order). Per group ``(component, architecture, compiler, optimisation,
  makeType)``: ``hist_grp_prev`` (previous peak), ``hist_grp_p95_5`` / ``hist_grp_mean_5`` (95th
  percentile / mean of the last 5 peaks), ``hist_grp_max_20`` / ``hist_grp_p95_20`` (last 20),
  ``hist_grp_ewm`` (exponentially weighted mean, weight ``ewm_alpha`` on the newest peak) and
  ``hist_grp_count`` (peaks seen). When a group has fewer than ``min_history`` peaks its statistics come
  from the coarse group ``(component, makeType)``, then from all jobs, and with no history at all from
  the job's own request ``memreq_gb``; ``hist_grp_source`` says which (0 group, 1 coarse, 2 global,
  3 request). Coarse group: ``hist_coarse_p95_5``, ``hist_coarse_max_20``, ``hist_coarse_ewm``,
  ``hist_coarse_count``; all jobs: ``hist_global_mean_5``, ``hist_global_p95_20``. Today's
  recommenders per group: ``hist_grp_max_seen`` (the largest peak the group has seen, all of its
  history) and ``hist_grp_vpa`` (Kubernetes VPA's recommendation, :mod:`resource_prediction.
  features.vpa`); a group without peaks shows its fallback's ``hist_grp_max_20`` there. History
  columns are never NaN, so a baseline ``hist_grp_p95_5 x margin`` always works.
* the job-adjusted level ``hist_grp_level`` (GB): the static level of the job's configuration
  (:class:`~resource_prediction.features.static_level.StaticLevel`, a ridge regression of ``log(peak)`` on
  the categorical and numeric features) times ``exp`` of the exponentially weighted mean residual
  (``log(peak)`` minus the static level) of earlier jobs of its group: the fine group, the coarse
  group or all jobs, whichever erred least on the jobs before it. In ``fit`` the static level is
  refitted after each share of :data:`~resource_prediction.features.level.LEVEL_REFITS` of the
  jobs, and a job sees the one fitted on the jobs before its block, so this column is causal too.

How the history is used:

* ``fit(df)`` stores the history of ``df``; ``observe(df)`` appends finished jobs (online use: predict
  a job, then observe it once it ends);
* ``transform(df)`` without the target: every job sees the stored history only;
* ``transform(df)`` with the target (``max_rss_gb`` or ``max_rss``): a replay, as a scheduler that
  learns each peak when the job ends: every job sees the stored history plus the earlier jobs of
  ``df``, never its own peak or a later one. The stored history counts as older than ``df``, so do not
  ``fit`` and ``transform`` the same frame for training: use ``fit_transform``;
* ``fit_transform(df)`` = ``fit(df)`` + a replay from an empty history: each training job sees only
  earlier training jobs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from resource_prediction.features.history import STAT_NAMES, GroupHistory, HistoryFeatures
from resource_prediction.features.level import COMBINE, LEVELS, JobLevel
from resource_prediction.features.raw import (
    REQUIRED_COLUMNS,
    SMALL_FRAME,
    UNKNOWN,
    check_columns,
    column,
    factorize_ints,
    factorize_labels,
    memreq_gb,
    parse_targets,
    split_branch,
    split_build_profile,
    target_gb,
    temporal_features,
    time_to_ns,
    to_float,
)
from resource_prediction.features.vpa import DecayingHistograms
from resource_prediction.schema import BUILD, Schema, frame_schema, get_schema

#: Build telemetry's features (:data:`resource_prediction.schema.BUILD` declares them).
TEMPORAL_FEATURES: tuple[str, ...] = BUILD.temporal
CATEGORICAL_FEATURES: tuple[str, ...] = BUILD.categorical
DERIVED_FEATURES: tuple[str, ...] = BUILD.numeric
QUANT_FEATURES: tuple[str, ...] = (
    "build_load", "target_intensity", "debug_multiplier", "heavy_target", "high_parallelism",
)
#: History columns: group statistics (with fallback), group count and source, coarse, global.
GROUP_STATS = {f"hist_grp_{s}": i for i, s in enumerate(STAT_NAMES)}
COARSE_STATS = {"hist_coarse_p95_5": 1, "hist_coarse_max_20": 3, "hist_coarse_ewm": 5}
GLOBAL_STATS = {"hist_global_mean_5": 2, "hist_global_p95_20": 4}
#: Recommenders of today's practice, per group: its largest peak so far, and Kubernetes VPA's.
RECOMMENDER_FEATURES: tuple[str, ...] = ("hist_grp_max_seen", "hist_grp_vpa")
HISTORY_FEATURES: tuple[str, ...] = (
    *GROUP_STATS, "hist_grp_count", "hist_grp_source", *COARSE_STATS, "hist_coarse_count",
    *GLOBAL_STATS, *RECOMMENDER_FEATURES, "hist_grp_level",
)
#: The feature families, in the order the book presents them.
FEATURE_FAMILIES: dict[str, tuple[str, ...]] = {
    "temporal": TEMPORAL_FEATURES,
    "categorical": CATEGORICAL_FEATURES,
    "derived": DERIVED_FEATURES,
    "quantitative": QUANT_FEATURES,
    "history": HISTORY_FEATURES,
}


def feature_families(columns: Iterable[str] | None = None) -> dict[str, str]:
    """Feature name -> family (``"other"`` for a column of ``columns`` in no family)."""
    known = {name: family for family, names in FEATURE_FAMILIES.items() for name in names}
    return known if columns is None else {c: known.get(c, "other") for c in columns}


ENCODINGS = ("category", "onehot")
#: Fill value of ``branch_number`` for branches without a number (``main``).
NO_BRANCH_NUMBER = -1.0
#: Numeric features passed on as parsed, missing values included: ``branch_number`` is complete
#: already, and a job without a configured request keeps none (NaN) rather than the training median,
#: so the guard and the baselines do not take an invented request for today's configuration. (The
#: static level, a ridge regression, still reads the filled request.)
UNFILLED: tuple[str, ...] = ("branch_number", "memreq_gb")
#: Features kept with a single value in fit: a workflow whose tasks all request the same memory
#: still has a configured request, for the guard and the request baseline to read.
KEPT_CONSTANT: tuple[str, ...] = ("memreq_gb",)
_GLOBAL_KEY = ("__all__",)


@dataclass
class _Keys:
    """Group of each row at the three history levels (codes into the distinct keys)."""

    ns: np.ndarray
    fine: tuple[np.ndarray, list]
    coarse: tuple[np.ndarray, list]

    def levels(self) -> dict[str, tuple[np.ndarray, list]]:
        """The rows' groups per history level of :data:`~resource_prediction.features.level.LEVELS`
        (all jobs form one group)."""
        return {"fine": self.fine, "coarse": self.coarse,
                "global": (np.zeros(self.ns.size, np.intp), [_GLOBAL_KEY])}


@dataclass
class _Parsed:
    """Raw columns parsed to arrays, before fitted vocabularies and fill values are applied."""

    keys: _Keys
    numeric: dict[str, np.ndarray]
    categorical: dict[str, tuple[np.ndarray, list[str]]]


def _parse_keys(df: pd.DataFrame) -> tuple[_Keys, dict[str, tuple[np.ndarray, list[str]]]]:
    """Time and history groups of each row, plus the categorical columns parsed on the way."""
    ns = time_to_ns(column(df, "time"))
    comp_codes, comp_labels = factorize_labels(column(df, "component"))
    make_codes, make_labels = factorize_labels(column(df, "makeType"))
    bp_codes, bp_labels = factorize_labels(column(df, "buildProfile"))
    parts = [split_build_profile(label) for label in bp_labels]
    triple_ids: dict[tuple[str, str, str], int] = {}
    triple_of_bp = np.array([triple_ids.setdefault(p, len(triple_ids)) for p in parts], dtype=np.int64)
    triples = list(triple_ids)
    n_t, n_m = len(triples), len(make_labels)
    coarse_code = comp_codes.astype(np.int64) * n_m + make_codes
    fine_code = (comp_codes.astype(np.int64) * n_t + triple_of_bp[bp_codes]) * n_m + make_codes
    fine_codes, fine_uniq = factorize_ints(fine_code)
    coarse_codes, coarse_uniq = factorize_ints(coarse_code)
    fine_keys = [
        (comp_labels[u // (n_t * n_m)], *triples[(u // n_m) % n_t], make_labels[u % n_m])
        for u in fine_uniq
    ]
    coarse_keys = [(comp_labels[u // n_m], make_labels[u % n_m]) for u in coarse_uniq]
    cats = {
        "component": (comp_codes, comp_labels),
        "makeType": (make_codes, make_labels),
        "architecture": (bp_codes, [p[0] for p in parts]),
        "compiler": (bp_codes, [p[1] for p in parts]),
        "optimisation": (bp_codes, [p[2] for p in parts]),
    }
    keys = _Keys(ns, (fine_codes, fine_keys), (coarse_codes, coarse_keys))
    return keys, cats


def _parse(df: pd.DataFrame, heavy: frozenset[str]) -> _Parsed:
    keys, cats = _parse_keys(df)
    for col in ("location", "ts_phase"):
        cats[col] = factorize_labels(column(df, col))
    numeric = temporal_features(keys.ns)

    branch_codes, branch_labels = factorize_labels(column(df, "branch"))
    branch_parts = [split_branch(b) if b != UNKNOWN else (UNKNOWN, np.nan) for b in branch_labels]
    cats["branch_prefix"] = (branch_codes, [p[0] for p in branch_parts])
    number = np.array([p[1] for p in branch_parts])[branch_codes]
    numeric["branch_number"] = np.where(np.isnan(number), NO_BRANCH_NUMBER, number)

    tgt_codes, tgt_labels = factorize_labels(column(df, "targets"))
    tgt = np.array([parse_targets(t, heavy) for t in tgt_labels]).reshape(-1, 3)[tgt_codes]
    numeric["n_targets"], numeric["has_dist"], numeric["n_heavy"] = tgt.T
    numeric["jobs"] = to_float(column(df, "jobs"))
    numeric["localJobs"] = to_float(column(df, "localJobs"))
    numeric["memreq_gb"] = memreq_gb(df)
    return _Parsed(keys, numeric, cats)


def _group_keys(cats: dict[str, tuple[np.ndarray, list[str]]], columns: tuple[str, ...], n: int
                ) -> tuple[np.ndarray, list]:
    """History group of each row: codes into the distinct label tuples of ``columns``."""
    code = np.zeros(n, dtype=np.int64)
    for col in columns:
        code = code * len(cats[col][1]) + cats[col][0]
    codes, uniques = factorize_ints(code)
    keys = []
    for u in uniques:
        labels = []
        for col in reversed(columns):
            size = len(cats[col][1])
            labels.append(cats[col][1][u % size])
            u //= size
        keys.append(tuple(reversed(labels)))
    return codes, keys


def _parse_columns(df: pd.DataFrame, schema: Schema) -> _Parsed:
    """Parse a source's declared columns (every source but build telemetry, whose columns need
    splitting: :func:`_parse`). A declared column the frame lacks is missing on every row."""
    ns = time_to_ns(column(df, "time"))
    n = ns.size
    cats = {}
    for col in dict.fromkeys((*schema.categorical, *schema.fine, *schema.coarse)):
        cats[col] = factorize_labels(column(df, col)) if col in df.columns else (
            np.zeros(n, dtype=np.intp), [UNKNOWN])
    temporal = temporal_features(ns)
    numeric = {name: temporal[name] for name in schema.temporal}
    for name in schema.numeric:
        if name == "memreq_gb":
            numeric[name] = memreq_gb(df)
        elif name in df.columns:
            numeric[name] = to_float(column(df, name))
        else:
            numeric[name] = np.full(n, np.nan)
    keys = _Keys(ns, _group_keys(cats, schema.fine, n), _group_keys(cats, schema.coarse, n))
    return _Parsed(keys, numeric, cats)


def _frame(arrays: list, columns: pd.Index, index: pd.Index, *, consolidate: bool) -> pd.DataFrame:
    """A DataFrame of freshly computed 1-D arrays, built the cheapest way for its size.

    Large frames: the public constructor with ``copy=False`` keeps each array as its own block (no
    copy into one 2-D block, which at a million rows costs more than computing a feature).
    Few rows or many columns (``consolidate``): pandas' private ``DataFrame._from_arrays`` skips checks
    that cost more than a one-row transform itself, with the public constructor as the fallback.
    Kept for speed, measured (pandas 3.1, 38 one-row arrays): 102 us against 317 us for
    ``pd.DataFrame(dict, copy=False)``, of a 2 ms budget per single-job prediction.
    """
    from_arrays = getattr(pd.DataFrame, "_from_arrays", None)
    if (consolidate or len(index) <= SMALL_FRAME) and from_arrays is not None:
        return from_arrays(arrays, columns=columns, index=index, verify_integrity=False)
    return pd.DataFrame(dict(zip(columns, arrays, strict=True)), index=index, copy=False)


def _nanmedian(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else 0.0


def _check_numbers(name: str, values, what: str, valid) -> None:
    """Raise unless ``values`` is a collection of numbers (not bools) for which ``valid`` holds."""
    if isinstance(values, str) or not isinstance(values, Iterable) or not all(
            isinstance(v, float | int) and not isinstance(v, bool) and valid(v) for v in values):
        raise ValueError(f"{name} must be a collection of {what}, got {values!r}")


class ModelPreprocessor(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    """Causal feature engineering for memory prediction: raw telemetry in, model features out.

    See the module docstring for the features and how the memory history is replayed.

    Parameters
    ----------
    encoding : {"category", "onehot"}, default="category"
        ``"category"``: categorical columns as pandas ``category`` with the categories learnt in fit
        plus ``unknown`` (for XGBoost / LightGBM). ``"onehot"``: one float32 indicator column
        ``"<column>=<category>"`` per category instead (for linear models).
    use_quant_features : bool, default=True
        Add the quantitative features ``build_load``, ``target_intensity``, ``debug_multiplier``,
        ``heavy_target`` and ``high_parallelism``.
    min_history : int, default=1
        Peaks a group needs before its own statistics are used; below, the coarse group's (then all
        jobs') statistics fill in.
    ewm_alpha : float, default=0.3
        Weight of the newest peak in the exponentially weighted means.
    level_shrinkage : tuple of float, default=()
        Prior strengths (in peaks) with which ``hist_grp_level`` may shrink a group's mean residual
        towards its parent grouping's (:class:`~resource_prediction.features.level.JobLevel`'s
        ``shrinkage``); empty: none.
    level_memories : tuple of float or None, default=None
        EWM weights of the longer-memory candidates of ``hist_grp_level`` (:class:`~resource_prediction.
        features.level.JobLevel`'s ``memories``; the first weight is ``ewm_alpha``); empty: none;
        None: the schema's (build telemetry ``(0.1,)``, the others none).
    level_choice : {None, "global", "coarse", "fine"}, default=None
        Grouping within which ``hist_grp_level`` chooses among its candidates (:class:`~resource_
        prediction.features.level.JobLevel`'s ``choose_within``); ``"global"``: one choice for all;
        None: the schema's (build telemetry ``"coarse"``, the others ``"global"``).
    level_interactions : bool or None, default=None
        Whether the static part of ``hist_grp_level`` may price the schema's pairs of categories
        (:class:`~resource_prediction.features.level.JobLevel`'s ``interactions``, kept only where
        they lower its errors on later jobs; build telemetry: the component's own effect of its
        build type and architecture; the others have none); None: yes.
    level_combine : {None, "choose", "average"}, default=None
        Whether ``hist_grp_level`` takes the candidate that erred least or their mean weighted by
        their errors (:class:`~resource_prediction.features.level.JobLevel`'s ``combine``); None:
        the schema's (build telemetry ``"average"``, the others ``"choose"``).
    level_trend : bool or None, default=None
        Whether the static part of ``hist_grp_level`` has a time trend per task type (the
        schema's ``trend``: build telemetry yes, workflow traces and Slurm accounting no); None:
        the schema's.
    level_request : bool or None, default=None
        Whether the static part of ``hist_grp_level`` reads the configured request (the schema's
        ``level_request``: workflow traces and Slurm accounting yes, build telemetry no); None: the
        schema's.
    heavy_targets : tuple of str, default=("dist",)
        Targets that count as heavy (packaging the whole product).
    schema : {None, "build", "nextflow", "slurm"}, default=None
        The source (:data:`resource_prediction.schema.SCHEMAS`); None: the one the frame given to
        ``fit`` records in ``attrs["schema"]``, else the one its columns show. ``use_quant_features``
        and ``heavy_targets`` concern build telemetry only.

    Attributes
    ----------
    feature_names_ : list of str
        Output columns, in order.
    categorical_features_ : list of str
        Output columns of dtype ``category`` (empty with one-hot encoding).
    vocabularies_ : dict of str to list of str
        Categories of each categorical column (``unknown`` last).
    schema_ : Schema
        The source's schema in use.
    dropped_features_ : list of str
        Declared features left out because they had a single value in fit (never for build
        telemetry; the request, :data:`KEPT_CONSTANT`, only when it had none).
    fill_values_ : dict of str to float
        Fitted medians that replace missing numeric values (except in ``unfilled_``).
    unfilled_ : tuple of str
        The numeric features left as parsed (:data:`UNFILLED`).
    high_parallelism_threshold_ : float
        75th percentile of ``localJobs`` in fit.
    n_history_jobs_ : int
        Jobs with a known peak in the stored history (fit plus observe).
    history_ : dict of str to GroupHistory
        The stored memory history per level (``fine``, ``coarse``, ``global``): the last 20 peaks,
        count and exponentially weighted sums of every group, so a one-job transform is a lookup.
    level_ : JobLevel
        The job-adjusted level: static level, residual histories and their errors.

    Examples
    --------
    >>> from resource_prediction.synthetic import generate_telemetry
    >>> df = generate_telemetry(500, seed=0)
    >>> pre = ModelPreprocessor()
    >>> X_train = pre.fit_transform(df.iloc[:400])
    >>> X_new = pre.transform(df.iloc[400:].drop(columns=["max_rss", "max_rss_gb"]))
    >>> list(X_new.columns) == pre.feature_names_, bool(X_new["hist_grp_p95_5"].notna().all())
    (True, True)
    """

    def __init__(
        self,
        encoding: str = "category",
        use_quant_features: bool = True,
        min_history: int = 1,
        ewm_alpha: float = 0.3,
        level_shrinkage: tuple[float, ...] = (),
        level_memories: tuple[float, ...] | None = None,
        level_choice: str | None = None,
        level_combine: str | None = None,
        level_interactions: bool | None = None,
        level_trend: bool | None = None,
        level_request: bool | None = None,
        heavy_targets: tuple[str, ...] = ("dist",),
        schema: str | None = None,
    ):
        self.encoding = encoding
        self.use_quant_features = use_quant_features
        self.min_history = min_history
        self.ewm_alpha = ewm_alpha
        self.level_shrinkage = level_shrinkage
        self.level_memories = level_memories
        self.level_choice = level_choice
        self.level_combine = level_combine
        self.level_interactions = level_interactions
        self.level_trend = level_trend
        self.level_request = level_request
        self.heavy_targets = heavy_targets
        self.schema = schema

    # ------------------------------------------------------------------ fitting
    def _validate_params(self) -> None:
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}, got {self.encoding!r}")
        if not isinstance(self.use_quant_features, bool | np.bool_):
            raise ValueError(f"use_quant_features must be a bool, got {self.use_quant_features!r}")
        if isinstance(self.min_history, bool) or not isinstance(self.min_history, int | np.integer) \
                or self.min_history < 1:
            raise ValueError(f"min_history must be an integer >= 1, got {self.min_history!r}")
        if not (isinstance(self.ewm_alpha, float | int) and 0.0 < self.ewm_alpha <= 1.0):
            raise ValueError(f"ewm_alpha must be in (0, 1], got {self.ewm_alpha!r}")
        _check_numbers("level_shrinkage", self.level_shrinkage, "positive numbers", lambda k: k > 0)
        if self.level_memories is not None:
            _check_numbers("level_memories", self.level_memories, "weights in (0, 1]", lambda a: 0 < a <= 1)
        for name in ("level_trend", "level_request", "level_interactions"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool | np.bool_):
                raise ValueError(f"{name} must be None or a bool, got {value!r}")
        if self.level_choice is not None and self.level_choice not in LEVELS:
            raise ValueError(f"level_choice must be one of {LEVELS}, got {self.level_choice!r}")
        if self.level_combine is not None and self.level_combine not in COMBINE:
            raise ValueError(f"level_combine must be one of {COMBINE}, got {self.level_combine!r}")
        if isinstance(self.heavy_targets, str) or not isinstance(self.heavy_targets, Iterable) \
                or not all(isinstance(t, str) for t in self.heavy_targets):
            raise ValueError(
                f"heavy_targets must be a collection of target names, got {self.heavy_targets!r}"
            )

    @staticmethod
    def _peaks(X: pd.DataFrame, y, *, required: bool, caller: str) -> np.ndarray | None:
        if y is not None:
            peaks = np.asarray(y, dtype=np.float64).ravel().copy()
            if peaks.size != len(X):
                raise ValueError(f"{caller}: y has {peaks.size} values but X has {len(X)} rows")
            peaks[~(peaks > 0)] = np.nan
            return peaks
        peaks = target_gb(X)
        if peaks is None and required:
            raise ValueError(
                f"{caller} needs the target: column 'max_rss_gb' (GB) or 'max_rss' (bytes), or y (GB)"
            )
        return peaks

    def _required(self, *, features: bool = False) -> tuple[str, ...]:
        """Columns a frame must have: the time and group keys, and with ``features`` (after fit)
        the columns of the features in use (a model never fills a whole missing column)."""
        if self.schema_.name == BUILD.name:
            return REQUIRED_COLUMNS
        keys = ("time", *self.schema_.fine, *self.schema_.coarse)
        if features:
            temporal = set(self.schema_.temporal) | {"memreq_gb"}
            keys += tuple(self.categorical_inputs_) + tuple(
                n for n in self.derived_features_ if n not in temporal)
        return tuple(dict.fromkeys(keys))

    def _parse(self, X: pd.DataFrame) -> _Parsed:
        if self.schema_.name == BUILD.name:
            return _parse(X, frozenset(self.heavy_targets))
        return _parse_columns(X, self.schema_)

    def _choose_features(self, parsed: _Parsed) -> None:
        """The schema's features, less those with a single value in fit when the schema says so."""
        schema = self.schema_
        self.dropped_features_ = []
        if schema.drop_constant:
            for col in schema.categorical:
                if np.unique(parsed.categorical[col][0]).size < 2:
                    self.dropped_features_.append(col)
            for name in (*schema.temporal, *schema.numeric):
                values = parsed.numeric[name]
                finite = values[np.isfinite(values)]
                constant = finite.size > 0 and finite.min() == finite.max()
                if finite.size == 0 or (constant and name not in KEPT_CONSTANT):
                    self.dropped_features_.append(name)
        dropped = set(self.dropped_features_)
        self.temporal_features_ = [n for n in schema.temporal if n not in dropped]
        self.categorical_inputs_ = [n for n in schema.categorical if n not in dropped]
        self.derived_features_ = [n for n in schema.numeric if n not in dropped]

    def _fit(self, X: pd.DataFrame, y) -> tuple[_Parsed, dict[str, np.ndarray]]:
        self._validate_params()
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"expected a pandas DataFrame of raw telemetry, got {type(X).__name__}")
        self.schema_ = frame_schema(X) if self.schema is None else get_schema(self.schema)
        check_columns(X, self._required())
        if len(X) == 0:
            raise ValueError("fit needs at least one job: the frame is empty")
        peaks = self._peaks(X, y, required=True, caller="fit")
        parsed = self._parse(X)
        self._choose_features(parsed)

        self.vocabularies_ = {}
        for col in self.categorical_inputs_:
            codes, labels = parsed.categorical[col]
            used = np.flatnonzero(np.bincount(codes, minlength=len(labels)))
            seen = {labels[i] for i in used} - {UNKNOWN}
            self.vocabularies_[col] = sorted(seen) + [UNKNOWN]
        self.unfilled_ = UNFILLED
        self.fill_values_ = {
            name: _nanmedian(values) for name, values in parsed.numeric.items()
            if name != "branch_number"
        }
        local_jobs = parsed.numeric.get("localJobs", np.empty(0))
        finite = local_jobs[np.isfinite(local_jobs)]
        self.high_parallelism_threshold_ = float(np.percentile(finite, 75)) if finite.size else np.inf
        self._set_output_layout()

        self.vpa_ = DecayingHistograms()
        self.history_ = {level: GroupHistory(self.ewm_alpha) for level in LEVELS}
        hist = self._history(parsed, peaks, commit=True, level=self._fit_level(parsed, peaks))
        self.n_history_jobs_ = int(np.isfinite(peaks).sum())
        return parsed, hist

    def _set_output_layout(self) -> None:
        self.category_dtypes_ = {
            col: pd.CategoricalDtype(pd.Index(vocab, dtype="str")) for col, vocab in self.vocabularies_.items()
        }
        self._vocab_index = {col: {v: i for i, v in enumerate(vocab)} for col, vocab in self.vocabularies_.items()}
        quant = QUANT_FEATURES if self.use_quant_features and self.schema_.name == BUILD.name else ()
        self.base_feature_names_ = [
            *self.temporal_features_, *self.categorical_inputs_, *self.derived_features_, *quant,
            *HISTORY_FEATURES,
        ]
        self._categorical_set = frozenset(self.categorical_inputs_)
        if self.encoding == "category":
            self.feature_names_ = list(self.base_feature_names_)
            self.categorical_features_ = list(self.categorical_inputs_)
        else:
            self.feature_names_ = []
            for name in self.base_feature_names_:
                if name in self._categorical_set:
                    self.feature_names_ += [f"{name}={v}" for v in self.vocabularies_[name]]
                else:
                    self.feature_names_.append(name)
            self.categorical_features_ = []
        self._columns = pd.Index(self.feature_names_)

    def fit(self, X: pd.DataFrame, y=None) -> ModelPreprocessor:
        """Learn vocabularies, fill values and the memory history of ``X``.

        Parameters
        ----------
        X : DataFrame
            Raw telemetry with the target (``max_rss_gb`` or ``max_rss``) unless ``y`` is given.
        y : array-like of shape (n_samples,), optional
            Peaks in GB, overriding the target columns of ``X``.
        """
        self._fit(X, y)
        return self

    def fit_transform(self, X: pd.DataFrame, y=None) -> pd.DataFrame:
        """Fit, then features of ``X`` where each job sees only the peaks of earlier jobs of ``X``."""
        parsed, hist = self._fit(X, y)
        return self._assemble(parsed, hist, X.index)

    def observe(self, X: pd.DataFrame, y=None) -> ModelPreprocessor:
        """Append finished jobs (with their peaks) to the stored history; vocabularies stay fixed.

        Needs the columns ``transform`` needs (the job-adjusted level reads the configuration) and
        the target (or ``y``).
        """
        check_is_fitted(self)
        check_columns(X, self._required(features=True))
        parsed = self._parse(X)
        peaks = self._peaks(X, y, required=True, caller="observe")
        self._replay_levels(parsed.keys, peaks, commit=True)
        self._level(parsed, peaks, commit=True)
        self.n_history_jobs_ += int(np.isfinite(peaks).sum())
        return self

    def __setstate__(self, state: dict) -> None:
        """Preprocessors pickled before schemas existed were fitted on build telemetry; those
        pickled before ``level_request`` (format 10.0) read the request in the static level, and
        those before ``level_combine`` (format 10.1) chose one candidate of the level and priced
        no interactions; those before ``unfilled_`` (format 10.3) filled a missing request."""
        if "history_" in state and "schema_" not in state:
            state.update(schema_=BUILD, dropped_features_=[], temporal_features_=list(BUILD.temporal),
                         categorical_inputs_=list(BUILD.categorical), derived_features_=list(BUILD.numeric),
                         _categorical_set=frozenset(BUILD.categorical))
        state.setdefault("schema", None)
        state.setdefault("level_request", True)
        state.setdefault("level_combine", "choose")
        state.setdefault("level_interactions", False)
        if "history_" in state:
            state.setdefault("unfilled_", ("branch_number",))
        self.__dict__.update(state)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "history_")

    # ------------------------------------------------------------------ transforming
    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Features of ``X``, rows aligned with ``X`` (same index and order).

        With the target in ``X``, each job also sees the peaks of earlier jobs of ``X`` (replay).
        """
        check_is_fitted(self)
        check_columns(X, self._required(features=True))
        peaks = self._peaks(X, None, required=False, caller="transform")
        parsed = self._parse(X)
        hist = self._history(parsed, peaks, commit=False)
        return self._assemble(parsed, hist, X.index)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Output column names (sklearn API)."""
        check_is_fitted(self)
        return np.asarray(self.feature_names_, dtype=object)

    def _levels_of(self, keys: _Keys, peaks: np.ndarray | None, *, commit: bool
                   ) -> dict[str, HistoryFeatures]:
        """Each level's history features of the rows: a replay of ``peaks`` (time order, ties in
        input order), or without peaks what the stored history shows."""
        groups = keys.levels()
        if peaks is None:
            return {level: self.history_[level].current(*groups[level]) for level in LEVELS}
        order = np.argsort(keys.ns, kind="stable")
        return {
            level: self.history_[level].replay(codes[order], key_list, peaks[order], commit=commit,
                                               out_index=order)
            for level, (codes, key_list) in groups.items()
        }

    def _replay_levels(self, keys: _Keys, peaks: np.ndarray, *, commit: bool) -> dict[str, HistoryFeatures]:
        out = self._levels_of(keys, peaks, commit=commit)
        order = np.argsort(keys.ns, kind="stable")
        p = peaks[order]
        codes, key_list = keys.fine
        vpa = np.empty(order.size)
        vpa[order] = self.vpa_.replay(codes[order], key_list, p, keys.ns[order] / 1e9, commit=commit)
        out["vpa"] = vpa
        return out

    def _history(self, parsed: _Parsed, peaks: np.ndarray | None, *, commit: bool,
                 level: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """History columns with the fallback chain group -> coarse -> global -> request."""
        keys = parsed.keys
        n = keys.ns.size
        replay = peaks is not None and (commit or np.isfinite(peaks).any())
        if replay:
            levels = self._replay_levels(keys, peaks, commit=commit)
        else:
            levels = {
                **self._levels_of(keys, None, commit=False),
                "vpa": self.vpa_.current(*keys.fine),
            }
        fine, coarse, glob = levels["fine"], levels["coarse"], levels["global"]
        # Fallbacks in place on the rows that need them (few): global <- request, coarse <- global,
        # group <- coarse (or global when the coarse group is short too).
        no_history = np.flatnonzero(glob.count < 1)
        if no_history.size:
            prior = self._filled(parsed, "memreq_gb")[no_history]
            for values in glob.stats:
                values[no_history] = prior
        coarse_short = coarse.count < self.min_history
        fine_short = np.flatnonzero(fine.count < self.min_history)
        from_global = fine_short[coarse_short[fine_short]]
        from_coarse = fine_short[~coarse_short[fine_short]]
        no_coarse = np.flatnonzero(coarse.count < 1)
        for f, c, g in zip(fine.stats, coarse.stats, glob.stats, strict=True):
            f[from_coarse] = c[from_coarse]
            f[from_global] = g[from_global]
            c[no_coarse] = g[no_coarse]
        source = np.zeros(n)
        source[from_coarse] = 1.0
        source[from_global] = 2.0
        source[no_history[fine.count[no_history] < self.min_history]] = 3.0
        hist = {name: fine.stats[i] for name, i in GROUP_STATS.items()}
        # Without history of its own the group's recommenders show the fallback's recent maximum
        # (the baselines read hist_grp_count and allocate the request instead).
        max_20 = fine.stats[GROUP_STATS["hist_grp_max_20"]]
        hist["hist_grp_max_seen"] = np.where(np.isnan(fine.max_seen), max_20, fine.max_seen)
        hist["hist_grp_vpa"] = np.where(np.isnan(levels["vpa"]), max_20, levels["vpa"])
        hist["hist_grp_count"] = fine.count
        hist["hist_grp_source"] = source
        hist.update({name: coarse.stats[i] for name, i in COARSE_STATS.items()})
        hist["hist_coarse_count"] = coarse.count
        hist.update({name: glob.stats[i] for name, i in GLOBAL_STATS.items()})
        hist["hist_grp_level"] = (self._level(parsed, peaks if replay else None, commit=commit)
                                  if level is None else level)
        return hist

    def _level_inputs(self, parsed: _Parsed) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The static level's inputs: vocabulary codes of the categorical features and the filled
        numeric features (not the temporal ones: the level must carry over to later jobs; nor the
        request where ``level_request`` says so)."""
        codes = {col: self._category_codes(parsed, col) for col in self.categorical_inputs_}
        left_out = set(self.temporal_features_) | (set() if self._level_settings()["request"] else {"memreq_gb"})
        numeric = {
            name: self._filled(parsed, name) if name in self.fill_values_ else parsed.numeric[name]
            for name in self.derived_features_ if name not in left_out
        }
        return codes, numeric

    def _fit_level(self, parsed: _Parsed, peaks: np.ndarray) -> np.ndarray:
        """Fit :attr:`level_` on the training jobs; their ``hist_grp_level`` (GB), causal."""
        codes, numeric = self._level_inputs(parsed)
        sized = {col: (c, len(self.vocabularies_[col])) for col, c in codes.items()}
        settings = self._level_settings()
        self.level_ = JobLevel(self.ewm_alpha, self.min_history, tuple(float(k) for k in self.level_shrinkage),
                               settings["memories"], settings["choose_within"], trend=settings["trend"],
                               combine=settings["combine"], interactions=settings["interactions"])
        with np.errstate(divide="ignore", invalid="ignore"):
            log_peaks = np.log(peaks)
        return np.exp(self.level_.fit(parsed.keys.levels(), parsed.keys.ns, sized,
                                      numeric, log_peaks))

    def _level_settings(self) -> dict:
        """The level's settings: each ``level_*`` parameter, or where it is None the schema's."""
        schema = self.schema_

        def given(value, default):
            return default if value is None else value

        return {"memories": tuple(float(a) for a in given(self.level_memories, schema.level_memories)),
                "choose_within": given(self.level_choice, schema.level_choice),
                "combine": given(self.level_combine, schema.level_combine),
                "interactions": schema.level_interactions if given(self.level_interactions, True) else (),
                "trend": schema.task if given(self.level_trend, schema.trend) else None,
                "request": bool(given(self.level_request, schema.level_request))}

    def _level(self, parsed: _Parsed, peaks: np.ndarray | None, *, commit: bool) -> np.ndarray:
        """``hist_grp_level`` (GB) of later jobs (a replay with ``peaks``)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            log_peaks = None if peaks is None else np.log(peaks)
        return np.exp(self.level_.transform(parsed.keys.levels(), parsed.keys.ns,
                                            *self._level_inputs(parsed), log_peaks, commit=commit))

    def _filled(self, parsed: _Parsed, name: str) -> np.ndarray:
        values = parsed.numeric[name]
        return np.where(np.isnan(values), self.fill_values_[name], values)

    def _category_codes(self, parsed: _Parsed, col: str) -> np.ndarray:
        codes, labels = parsed.categorical[col]
        index = self._vocab_index[col]
        unknown = index[UNKNOWN]
        return np.array([index.get(label, unknown) for label in labels], dtype=np.int64)[codes]

    def _assemble(self, parsed: _Parsed, hist: dict[str, np.ndarray], index: pd.Index) -> pd.DataFrame:
        num = {name: self._filled(parsed, name) for name in (*self.temporal_features_, *self.derived_features_)
               if name not in self.unfilled_}
        num.update({name: parsed.numeric[name] for name in self.unfilled_ if name in parsed.numeric})
        if self.use_quant_features and self.schema_.name == BUILD.name:
            n_targets, local_jobs = num["n_targets"], num["localJobs"]
            n_heavy = self._filled(parsed, "n_heavy")
            is_dbg = np.array([label == "dbg" for label in parsed.categorical["makeType"][1]])
            num["build_load"] = local_jobs * n_targets
            num["target_intensity"] = n_targets + n_heavy
            num["debug_multiplier"] = np.where(is_dbg[parsed.categorical["makeType"][0]], 2.0, 1.0)
            num["heavy_target"] = (n_heavy > 0).astype(np.float64)
            num["high_parallelism"] = (local_jobs >= self.high_parallelism_threshold_).astype(np.float64)
        num.update(hist)
        arrays: list = []
        for name in self.base_feature_names_:
            if name not in self._categorical_set:
                arrays.append(num[name].astype(np.float64, copy=False))
                continue
            codes = self._category_codes(parsed, name)
            if self.encoding == "category":
                arrays.append(pd.Categorical.from_codes(
                    codes, dtype=self.category_dtypes_[name], validate=False
                ))
            else:
                block = np.zeros((len(self.vocabularies_[name]), codes.size), dtype=np.float32)
                block[codes, np.arange(codes.size)] = 1.0
                arrays.extend(block)
        return _frame(arrays, self._columns, index, consolidate=self.encoding == "onehot")
