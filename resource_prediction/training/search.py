"""Hyper-parameter search: one Optuna study per model family, scored by the business score.

The objective of a trial is the mean business score (lower is better) of the family's model over an
expanding-window time-series cross-validation of the training part: fold ``k`` fits on the oldest
jobs and validates on the block of jobs that follows them. The preprocessor is fitted on each fold's
training part; the validation part is transformed with causal replay (every validation job sees the
peaks of the validation jobs before it, as a scheduler that learns each peak when the job ends).
Preprocessed folds are cached per preprocessor setting (encoding and ``pre__*`` parameters), so
trials only fit models.

* **Search spaces** come from the registry (:data:`resource_prediction.registry.MODEL_FAMILIES`):
  ``family.search_space(trial)`` returns the parameters, ``pre__*`` keys for the preprocessor
  (:data:`~resource_prediction.models.PREPROCESSOR_PREFIX`), the others for the model.
* **Sampler and pruner**: :class:`optuna.samplers.TPESampler` seeded with ``seed`` and
  :class:`optuna.pruners.MedianPruner`: after each fold the trial reports its running CV score and is
  pruned when that is worse than the median of earlier trials at the same fold.
* **Failures**: a trial whose model raises or predicts non-finite allocations is recorded as failed
  with the reason in its ``fail_reason`` user attribute; the search goes on. A family whose every
  trial failed is reported with status ``"failed"`` (log, return value and search summary).
* **Storage**: see :mod:`resource_prediction.training.storage`. Studies are loaded if they exist,
  so a search continues where an earlier (or killed) one stopped, and several processes given the same
  storage URL share the work.

Distributed search on several machines (one PostgreSQL database)::

    # once: a database the workers can reach, and the driver on every machine
    pip install -e '.[postgres]'
    createdb -h db.example.org -U optuna resource_prediction
    # on every machine (same data file, same penalty and folds; a different --seed per worker so the
    # samplers do not propose the same points):
    resource-prediction search --data telemetry.csv --n-trials 50 --seed $WORKER_ID \\
        --storage postgresql+psycopg://optuna:secret@db.example.org/resource_prediction
    # then, anywhere:
    resource-prediction evaluate --data telemetry.csv --storage postgresql+psycopg://...

Each worker runs ``--n-trials`` more trials per family; the studies add them up. For several
processes on one machine use a journal file instead of SQLite:
``--storage journal:///path/to/studies.log``.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState
from sklearn.model_selection import TimeSeriesSplit
from threadpoolctl import threadpool_limits

from resource_prediction.artifacts import jsonable
from resource_prediction.deployable import data_fingerprint
from resource_prediction.features.raw import target_gb
from resource_prediction.metrics import DEFAULT_PENALTY, business_score
from resource_prediction.paths import ArtifactPaths
from resource_prediction.preprocessing import ModelPreprocessor
from resource_prediction.registry import (
    PREPROCESSOR_PREFIX,
    SEARCH_TASK_TYPES,
    get_family,
    split_params,
)
from resource_prediction.registry import families as registry_families
from resource_prediction.training.storage import (
    MEMORY_URLS,
    STUDY_PREFIX,
    describe_storage,
    open_storage,
    resolve_storage_url,
    study_name,
)
from resource_prediction.training.workers import FAIL_REASON_ATTR, RUN_ATTR, WorkerPool, fail_reason

__all__ = [
    "DEFAULT_FOLDS",
    "FamilyResult",
    "FoldCache",
    "HyperparameterSearcher",
    "best_params",
    "best_usable_trial",
    "default_params",
    "search_summary",
    "time_series_folds",
]

log = logging.getLogger(__name__)

DEFAULT_FOLDS = 3


# ---------------------------------------------------------------------------- defaults
def _admits(dist: optuna.distributions.BaseDistribution, value) -> bool:
    """Whether ``value`` is a value the distribution can suggest."""
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return value in dist.choices
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if not dist.low <= value <= dist.high:
        return False
    step = getattr(dist, "step", None)
    return step is None or abs((value - dist.low) / step - round((value - dist.low) / step)) < 1e-9


def default_params(family: str) -> dict:
    """The family's default hyper-parameters under the names its search space suggests.

    A new study runs them first (:meth:`HyperparameterSearcher.search_family`): with a budget of
    ten trials, the search then never keeps parameters that score worse on its folds than the
    defaults the project measured on every scenario. Parameters the space does not suggest, or
    whose default lies outside the space, are left to the sampler.
    """
    fam = get_family(family)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        probe = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    finally:
        optuna.logging.set_verbosity(verbosity)
    fam.search_space(probe)
    defaults = {f"{PREPROCESSOR_PREFIX}{k}": v for k, v in ModelPreprocessor().get_params().items()}
    defaults.update(fam.estimator.get_params(deep=True))
    return {name: defaults[name] for name, dist in probe.distributions.items()
            if name in defaults and _admits(dist, defaults[name])}


# ---------------------------------------------------------------------------- folds
def time_series_folds(n_rows: int, n_folds: int = DEFAULT_FOLDS) -> list[tuple[np.ndarray, np.ndarray]]:
    """Expanding-window folds over rows in time order: ``(train positions, validation positions)``.

    Examples
    --------
    >>> [(len(tr), len(va)) for tr, va in time_series_folds(100, 3)]
    [(25, 25), (50, 25), (75, 25)]
    """
    if n_folds < 1:
        raise ValueError(f"n_folds must be at least 1, got {n_folds}")
    if n_rows < 2 * (n_folds + 1):
        raise ValueError(f"{n_rows} jobs are too few for {n_folds} time-series folds")
    if n_folds == 1:
        cut = n_rows // 2
        return [(np.arange(cut), np.arange(cut, n_rows))]
    return list(TimeSeriesSplit(n_splits=n_folds).split(np.arange(n_rows)))


@dataclass
class Fold:
    """One preprocessed fold: features and peaks (GB) of the training and validation parts."""

    X_train: pd.DataFrame
    y_train: np.ndarray
    X_val: pd.DataFrame
    y_val: np.ndarray


class FoldCache:
    """Preprocessed time-series folds of a training frame, built once per preprocessor setting.

    Parameters
    ----------
    train_raw : DataFrame
        Raw telemetry with the target (``max_rss_gb`` or ``max_rss``), any order (sorted by time here).
    n_folds : int
        Expanding-window folds.

    Notes
    -----
    Thread-safe: trials running in parallel (``n_jobs > 1``) wait for a setting being built rather
    than building it twice.
    """

    def __init__(self, train_raw: pd.DataFrame, n_folds: int = DEFAULT_FOLDS):
        self.train_raw = train_raw.sort_values("time", kind="stable").reset_index(drop=True)
        self.n_folds = n_folds
        self.y = target_gb(self.train_raw)
        if self.y is None or not np.all(np.isfinite(self.y)):
            raise ValueError("every training job needs a positive peak (max_rss_gb or max_rss)")
        self.splits = time_series_folds(len(self.train_raw), n_folds)
        self._folds: dict[tuple, list[Fold]] = {}
        self._locks: dict[tuple, threading.Lock] = {}
        self._guard = threading.Lock()
        self.n_builds = 0

    @staticmethod
    def key(encoding: str, pre_params: dict) -> tuple:
        return (encoding, tuple(sorted(pre_params.items())))

    def folds(self, encoding: str, pre_params: dict) -> list[Fold]:
        """The folds preprocessed with ``encoding`` and ``pre_params`` (built on first use)."""
        key = self.key(encoding, pre_params)
        with self._guard:
            if key in self._folds:
                return self._folds[key]
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._folds:
                self._folds[key] = self._build(encoding, pre_params)
                self.n_builds += 1
        return self._folds[key]

    def _build(self, encoding: str, pre_params: dict) -> list[Fold]:
        start = time.perf_counter()
        y_all = self.y
        out = []
        for train_idx, val_idx in self.splits:
            pre = ModelPreprocessor(**{"encoding": encoding, **pre_params})
            tr, va = self.train_raw.iloc[train_idx], self.train_raw.iloc[val_idx]
            # The validation part keeps its target: transform replays it causally.
            out.append(Fold(pre.fit_transform(tr), y_all[train_idx], pre.transform(va), y_all[val_idx]))
        log.debug("preprocessed %d folds (%s, %s) in %.1f s", len(out), encoding, pre_params,
                  time.perf_counter() - start)
        return out


# ---------------------------------------------------------------------------- results
@dataclass
class FamilyResult:
    """The state of one family's study after a search (counts cover the whole study)."""

    family: str
    task_type: str
    study_name: str
    status: str  # "ok", "failed" (every finished trial failed) or "empty" (no usable finished trial)
    best_value: float | None = None
    best_trial: int | None = None
    best_params: dict | None = None
    n_trials: int = 0
    n_complete: int = 0
    n_pruned: int = 0
    n_failed: int = 0
    n_running: int = 0
    fail_reasons: list[str] = field(default_factory=list)
    trial_seconds: float = 0.0  # summed duration of the study's finished trials
    seconds: float | None = None  # wall time of this run (None when read from the storage)

    def as_row(self) -> dict:
        row = asdict(self)
        row["best_params"] = json.dumps(self.best_params, default=str) if self.best_params else ""
        row["fail_reasons"] = " | ".join(self.fail_reasons)
        return row


def _trial_params(trial: optuna.trial.FrozenTrial) -> dict:
    """Every parameter the search space returned (stored by the objective), else the sampled ones."""
    stored = trial.user_attrs.get("params")
    return dict(stored) if stored is not None else dict(trial.params)


def best_usable_trial(study: optuna.Study, family: str) -> optuna.trial.FrozenTrial | None:
    """The best complete trial whose parameters the family's estimator still takes.

    A study resumed across versions can hold trials of an earlier parameter layout (e.g. ``n_estimators``
    before the booster's became ``booster__n_estimators``): they are passed over, with a warning.
    """
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    fam = get_family(family)
    passed_over = []
    best = None
    for trial in sorted(complete, key=lambda t: t.value):
        try:
            fam.make_estimator(_trial_params(trial))
        except (ValueError, TypeError):
            passed_over.append(trial.number)
            continue
        best = trial
        break
    if passed_over:
        log.warning("%s: %d better trial(s) (%s) have parameters the family no longer takes; passed over",
                    study.study_name, len(passed_over), ", ".join(map(str, passed_over[:5])))
    return best


def family_result(
    study: optuna.Study, family: str, task_type: str, seconds: float | None = None
) -> FamilyResult:
    """Summarise a family's study."""
    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    study_attrs = study.user_attrs if failed else {}
    reasons = list(dict.fromkeys(fail_reason(t, study_attrs) for t in failed))
    best = best_usable_trial(study, family) if complete else None
    result = FamilyResult(
        family=family,
        task_type=task_type,
        study_name=study.study_name,
        status="ok" if best is not None else ("failed" if failed else "empty"),
        n_trials=len(trials),
        n_complete=len(complete),
        n_pruned=states.count(TrialState.PRUNED),
        n_failed=len(failed),
        n_running=states.count(TrialState.RUNNING),
        fail_reasons=reasons[:5],
        trial_seconds=float(sum(t.duration.total_seconds() for t in trials if t.duration is not None)),
        seconds=seconds,
    )
    if best is not None:
        result.best_value = float(best.value)
        result.best_trial = best.number
        result.best_params = _trial_params(best)
    return result


def _load_study(storage, family: str, prefix: str) -> optuna.Study | None:
    try:
        return optuna.load_study(study_name=study_name(family, prefix), storage=storage)
    except KeyError:
        return None


def best_params(
    family: str,
    storage: str | optuna.storages.BaseStorage | None = None,
    paths: ArtifactPaths | None = None,
    prefix: str = STUDY_PREFIX,
) -> tuple[dict | None, float | None]:
    """Best parameters and CV score of a family's study, or ``(None, None)`` without a finished one."""
    study = _load_study(open_storage(storage, paths), family, prefix)
    if study is None:
        return None, None
    best = best_usable_trial(study, family)
    if best is None:
        return None, None
    return _trial_params(best), float(best.value)


def search_summary(
    families: Iterable[str],
    storage: str | optuna.storages.BaseStorage | None = None,
    paths: ArtifactPaths | None = None,
    prefix: str = STUDY_PREFIX,
) -> pd.DataFrame:
    """One row per family with a study in ``storage``: best CV score and params, trial counts."""
    opened = open_storage(storage, paths)
    rows = []
    for name in families:
        study = _load_study(opened, name, prefix)
        if study is not None:
            rows.append(family_result(study, name, get_family(name).task_type).as_row())
    columns = list(FamilyResult.__dataclass_fields__)
    return pd.DataFrame(rows, columns=columns)


# ---------------------------------------------------------------------------- search
class TrialFailed(RuntimeError):
    """A trial's model could not be fitted or predicted usable allocations."""


class HyperparameterSearcher:
    """Optuna search of every selected model family under time-series cross-validation.

    Parameters
    ----------
    train_raw : DataFrame
        Raw telemetry of the training part (with ``max_rss``/``max_rss_gb``); never the holdout.
    families : list of str, optional
        Family names to search; default every registered family of ``task_type``.
    task_type : {"regression", "classification"}, optional
        Restrict the default families to one task type (both when ``None``; baselines are only
        searched when named in ``families``).
    n_trials : int
        Trials per family in this run (added to what the study already holds).
    timeout : float, optional
        Seconds per family in this run.
    n_jobs : int
        Parallel trials per study: worker processes sharing the study through its storage
        (:mod:`~resource_prediction.training.workers`), or threads where processes cannot share
        it (the ``memory`` storage, a storage object, families that do not pickle).
    storage : str or optuna storage, optional
        Storage URL (see :mod:`~resource_prediction.training.storage`); default the SQLite file of
        ``paths``.
    penalty : float
        The business score's penalty (the objective's and the cost-aware models').
    seed : int
        Seed of the TPE sampler and of the models.
    n_folds : int
        Expanding-window CV folds.
    paths : ArtifactPaths, optional
        Artifacts layout (default storage).
    n_startup_trials : int
        Trials before the pruner prunes and before TPE leaves random sampling.
    show_progress_bar : bool
        Optuna's progress bar.
    study_prefix : str
        Study names are ``<study_prefix>/<family>``.
    threads_per_trial : int
        OpenMP/BLAS threads a trial may use. The default 1 is the fastest on a busy machine
        (OpenMP models such as scikit-learn's histogram boosting slow down by an order of magnitude
        when their threads compete for cores); use ``n_jobs`` for parallelism.
    """

    def __init__(
        self,
        train_raw: pd.DataFrame,
        families: Iterable[str] | None = None,
        task_type: str | None = None,
        n_trials: int | None = 20,
        timeout: float | None = None,
        n_jobs: int = 1,
        storage: str | optuna.storages.BaseStorage | None = None,
        penalty: float = DEFAULT_PENALTY,
        seed: int = 0,
        n_folds: int = DEFAULT_FOLDS,
        paths: ArtifactPaths | None = None,
        n_startup_trials: int = 5,
        show_progress_bar: bool = True,
        study_prefix: str = STUDY_PREFIX,
        threads_per_trial: int = 1,
    ):
        if task_type is not None and task_type not in SEARCH_TASK_TYPES:
            raise ValueError(f"task_type must be one of {SEARCH_TASK_TYPES} or None, got {task_type!r}")
        if n_trials is None and timeout is None:
            raise ValueError("give a budget: n_trials, timeout or both")
        if families:
            self.families = [get_family(name).name for name in families]
        else:
            types = [task_type] if task_type else list(SEARCH_TASK_TYPES)
            self.families = [name for t in types for name in registry_families(t)]
        if not self.families:
            raise ValueError(f"no registered family to search (task_type={task_type!r})")
        self.n_trials = n_trials
        self.timeout = timeout
        self.n_jobs = n_jobs
        self.paths = paths or ArtifactPaths()
        self.storage_url = storage if isinstance(storage, str) or storage is None else None
        self.storage = open_storage(storage, self.paths)
        self._storage_is_object = not (isinstance(storage, str) or storage is None)
        self.penalty = penalty
        self.seed = seed
        self.n_folds = n_folds
        self.n_startup_trials = n_startup_trials
        self.show_progress_bar = show_progress_bar
        self.study_prefix = study_prefix
        self.threads_per_trial = threads_per_trial
        self.cache = FoldCache(train_raw, n_folds)
        self.fingerprint = _fingerprint(self.cache.train_raw)
        self._workers: WorkerPool | None = None

    def shared_storage_url(self) -> str | None:
        """The storage URL other processes can open (``None`` for memory or a storage object)."""
        if self._storage_is_object:
            return None
        url = resolve_storage_url(self.storage_url, self.paths)
        return None if url in MEMORY_URLS else url

    def worker_factory(self) -> Callable[[], HyperparameterSearcher]:
        """A picklable factory of the searcher a worker process builds (one trial at a time)."""
        return functools.partial(
            HyperparameterSearcher, self.cache.train_raw, families=self.families,
            storage=self.shared_storage_url(), penalty=self.penalty, seed=self.seed,
            n_folds=self.n_folds, paths=self.paths, n_startup_trials=self.n_startup_trials,
            study_prefix=self.study_prefix, threads_per_trial=self.threads_per_trial,
            n_trials=self.n_trials, timeout=self.timeout, n_jobs=1, show_progress_bar=False,
        )

    # ------------------------------------------------------------------ studies
    def create_study(self, family: str, sampler_seed: int | None = None) -> optuna.Study:
        """Create or load the family's study (TPE sampler seeded with ``seed``, median pruner).

        ``sampler_seed`` overrides the sampler's seed (parallel workers each get their own).

        Raises
        ------
        ValueError
            The stored study was run with another penalty or number of folds (its scores are not
            comparable); use another storage or study prefix.
        """
        fam = get_family(family)
        study = optuna.create_study(
            storage=self.storage,
            study_name=study_name(family, self.study_prefix),
            direction="minimize",
            load_if_exists=True,
            sampler=optuna.samplers.TPESampler(
                seed=self.seed if sampler_seed is None else sampler_seed,
                n_startup_trials=self.n_startup_trials,
            ),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=self.n_startup_trials, n_warmup_steps=0),
        )
        attrs = study.user_attrs
        expected = {"penalty": float(self.penalty), "n_folds": int(self.n_folds)}
        for key, value in expected.items():
            if key in attrs and attrs[key] != value:
                raise ValueError(
                    f"study {study.study_name!r} was searched with {key}={attrs[key]}, this search "
                    f"uses {key}={value}: the scores are not comparable. Use another --storage."
                )
        if attrs.get("data") not in (None, self.fingerprint):
            log.warning(
                "study %s was started on other data (%s, now %s): its earlier trials were scored "
                "on that data", study.study_name, attrs.get("data"), self.fingerprint,
            )
        for key, value in {**expected, "family": family, "task_type": fam.task_type,
                           "data": self.fingerprint}.items():
            if attrs.get(key) != value:
                study.set_user_attr(key, value)
        return study

    # ------------------------------------------------------------------ objective
    def objective(self, family: str, run: str | None = None) -> Callable[[optuna.Trial], float]:
        """The define-by-run objective of a family: mean CV business score of a trial's params.

        ``run`` (a worker pool's id) is recorded on every trial, so the pool can find its trials.
        """
        fam = get_family(family)
        encoding = fam.preferred_encoding

        def cv_score(trial: optuna.Trial) -> float:
            params = fam.search_space(trial)
            trial.set_user_attr("params", jsonable(params))
            model_params, pre_params = split_params(params)
            folds = self.cache.folds(encoding, pre_params)
            scores: list[float] = []
            start = time.perf_counter()
            for step, fold in enumerate(folds):
                model = fam.make_estimator(model_params, penalty=self.penalty, random_state=self.seed)
                model.fit(fold.X_train, fold.y_train)
                pred = np.asarray(model.predict(fold.X_val), dtype=float)
                if pred.shape != fold.y_val.shape or not np.all(np.isfinite(pred)):
                    raise TrialFailed(
                        f"fold {step}: {int(np.sum(~np.isfinite(pred)))} non-finite of "
                        f"{pred.size} predictions (expected {fold.y_val.size})"
                    )
                scores.append(business_score(pred, fold.y_val, penalty=self.penalty))
                running = float(np.mean(scores))
                trial.report(running, step)
                if trial.should_prune():
                    trial.set_user_attr("cv_scores", scores)
                    raise optuna.TrialPruned(f"fold {step}: running CV score {running:.2f}")
            trial.set_user_attr("cv_scores", scores)
            trial.set_user_attr("seconds", time.perf_counter() - start)
            return float(np.mean(scores))

        def objective(trial: optuna.Trial) -> float:
            if run is not None:
                trial.set_user_attr(RUN_ATTR, run)
            try:
                return cv_score(trial)
            except optuna.TrialPruned:
                raise
            except Exception as exc:  # recorded, then re-raised: Optuna marks the trial FAIL
                trial.set_user_attr(FAIL_REASON_ATTR, f"{type(exc).__name__}: {exc}"[:500])
                raise

        return objective

    # ------------------------------------------------------------------ running
    def search_family(self, family: str) -> FamilyResult:
        """Run this searcher's budget on one family's study; return the study's state."""
        study = self.create_study(family)
        before = len(study.get_trials(deepcopy=False))
        start = time.perf_counter()
        log.info("searching %s: %s trials, timeout %s, %d parallel, study %s (%d trials so far)",
                 family, self.n_trials, self.timeout, self.n_jobs, study.study_name, before)
        n_trials, timeout = self.n_trials, self.timeout
        if before == 0:
            # The defaults first and alone (one worker): processes sharing an SQLite study could
            # both take an enqueued trial.
            study.enqueue_trial(default_params(family), user_attrs={"defaults": True})
            self._run(study, family, 1, timeout)
            n_trials = None if n_trials is None else n_trials - 1
            if timeout is not None:
                timeout = max(timeout - (time.perf_counter() - start), 0.0)
        if n_trials != 0 and timeout != 0.0:
            self._run(study, family, n_trials, timeout)
        result = family_result(study, family, get_family(family).task_type, time.perf_counter() - start)
        if result.status == "ok":
            log.info(
                "%s: best CV score %.2f (trial %d); %d complete, %d pruned, %d failed in %.0f s",
                family, result.best_value, result.best_trial, result.n_complete, result.n_pruned,
                result.n_failed, result.seconds,
            )
        else:
            log.error(
                "%s: no successful trial (%d failed); reasons: %s", family, result.n_failed,
                "; ".join(result.fail_reasons) or "none recorded",
            )
        return result

    def _run(self, study: optuna.Study, family: str, n_trials: int | None, timeout: float | None) -> None:
        """Trials of ``family`` in the worker processes, or in this process's threads."""
        if self.n_jobs > 1 and self._worker_pool() is not None:
            self._workers.optimize(study, family, n_trials, timeout)
        else:
            self.optimize(family, n_trials, timeout, self.n_jobs, study=study)

    def optimize(
        self,
        family: str,
        n_trials: int | None,
        timeout: float | None,
        n_jobs: int = 1,
        *,
        study: optuna.Study | None = None,
        sampler_seed: int | None = None,
        run: str | None = None,
    ) -> optuna.Study:
        """Run trials of ``family`` in this process (``n_jobs`` threads); the study is returned."""
        study = study or self.create_study(family, sampler_seed)
        with threadpool_limits(limits=self.threads_per_trial):
            study.optimize(
                self.objective(family, run),
                n_trials=n_trials,
                timeout=timeout,
                n_jobs=n_jobs,
                catch=(Exception,),
                show_progress_bar=self.show_progress_bar,
            )
        return study

    def _worker_pool(self) -> WorkerPool | None:
        """The worker processes of parallel trials, or ``None`` where trials must use threads."""
        if self._workers is None:
            if self.shared_storage_url() is None:
                log.info("parallel trials in threads: the storage is not shared between processes")
                return None
            pool = WorkerPool(self.worker_factory(), self.families, self.n_jobs, self.n_trials,
                              self.timeout, self.seed, self.show_progress_bar)
            if not pool.available():
                return None
            self._workers = pool
        return self._workers

    def close(self) -> None:
        """Stop the worker processes of parallel trials (:meth:`run` does it when it ends)."""
        if self._workers is not None:
            self._workers.close()
            self._workers = None

    def run(self) -> dict[str, FamilyResult]:
        """Search every family in turn; families that fail do not stop the others."""
        log.info("search of %d families on %d training jobs, %d folds, penalty %g, storage %s",
                 len(self.families), len(self.cache.train_raw), self.n_folds, self.penalty,
                 describe_storage(self.storage_url, self.paths))
        try:
            results = {name: self.search_family(name) for name in self.families}
        finally:
            self.close()
        failed = [name for name, r in results.items() if r.status != "ok"]
        if failed:
            log.error("families without any successful trial: %s", ", ".join(failed))
        return results

    def summary(self, results: dict[str, FamilyResult] | None = None) -> pd.DataFrame:
        """Search summary frame (one row per family): of ``results`` or read from the storage."""
        if results is None:
            return search_summary(self.families, self.storage, self.paths, self.study_prefix)
        return pd.DataFrame([r.as_row() for r in results.values()],
                            columns=list(FamilyResult.__dataclass_fields__))


def _fingerprint(df: pd.DataFrame) -> str:
    """A short identity of the training data: rows and the start of its SHA-256."""
    return f"{len(df)} jobs, sha256 {data_fingerprint(df)[:16]}"
