"""Parallel trials in worker processes that share one study through its storage.

Optuna's ``n_jobs`` runs trials in threads of one process, where the models' native libraries fit
at the same time. LightGBM is not safe under that: a 20-trial search with two threads died once of
a segmentation fault in ``lib_lightgbm.so``, and the whole search with it. In worker processes a
crash ends one worker: its running trial is marked failed with the reason, the other workers'
trials finish, and the search goes on with a fresh pool for the next family. Processes also run
the Python parts of trials in parallel, which threads cannot (the GIL).

Workers are started with ``spawn`` (a clean interpreter: no OpenMP state inherited by ``fork``).
Each receives a picklable factory once (the search hands it down: this module never imports the
search), builds its own searcher with it and runs its share of a family's trials on the shared
study, with a TPE sampler seeded apart from the others'.
"""

from __future__ import annotations

import logging
import multiprocessing
import pickle
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState
from tqdm.auto import tqdm

from resource_prediction.registry import MODEL_FAMILIES, ModelFamily, get_family, register_family

__all__ = ["FAIL_REASON_ATTR", "RUN_ATTR", "Searcher", "WorkerPool", "fail_reason", "sampler_seed",
           "trial_shares"]

log = logging.getLogger(__name__)

#: User attribute of a trial: the id of the pool whose worker ran it.
RUN_ATTR = "worker_run"
#: User attribute of a failed trial: why it failed. A trial whose worker died has no such
#: attribute (Optuna's public API cannot set one on another process's trial): its reason is the
#: study's user attribute ``fail_reason/<trial number>``.
FAIL_REASON_ATTR = "fail_reason"
_NO_REASON = "unknown (no reason recorded)"


class Searcher(Protocol):
    """What a worker needs from the searcher its factory builds."""

    def optimize(self, family: str, n_trials: int | None, timeout: float | None, n_jobs: int = 1, *,
                 sampler_seed: int | None = None, run: str | None = None) -> optuna.Study: ...


_SEARCHER: Searcher | None = None


def fail_reason(trial: FrozenTrial, study_attrs: dict) -> str:
    """Why a failed trial failed: its own record, or the one the pool left when its worker died."""
    return trial.user_attrs.get(FAIL_REASON_ATTR) or study_attrs.get(
        f"{FAIL_REASON_ATTR}/{trial.number}", _NO_REASON
    )


def trial_shares(n_trials: int | None, n_workers: int) -> list[int | None]:
    """Split a trial budget over workers (``None``: no trial limit, each runs to the timeout).

    >>> trial_shares(20, 3), trial_shares(1, 2), trial_shares(None, 2)
    ([7, 7, 6], [1, 0], [None, None])
    """
    if n_trials is None:
        return [None] * n_workers
    return [n_trials // n_workers + (i < n_trials % n_workers) for i in range(n_workers)]


def sampler_seed(seed: int, worker: int) -> int:
    """A sampler seed per worker, apart from every other (seed, worker) pair."""
    return int(np.random.SeedSequence([seed, worker]).generate_state(1)[0])


@dataclass
class _Spec:
    """What a worker needs to build its searcher (pickled once per worker)."""

    make_searcher: Callable[[], Searcher]
    families: list[ModelFamily]
    log_level: int
    optuna_verbosity: int


def _init_worker(spec: _Spec) -> None:
    global _SEARCHER
    logging.basicConfig(level=spec.log_level, format="%(levelname)s %(name)s: %(message)s")
    optuna.logging.set_verbosity(spec.optuna_verbosity)
    for family in spec.families:  # families registered at run time (notebooks, tests)
        if family.name not in MODEL_FAMILIES:
            register_family(family)
    _SEARCHER = spec.make_searcher()


def _run_share(family: str, n_trials: int | None, timeout: float | None, seed: int, run: str) -> None:
    assert _SEARCHER is not None, "worker not initialised"
    _SEARCHER.optimize(family, n_trials=n_trials, timeout=timeout, n_jobs=1, sampler_seed=seed, run=run)


class WorkerPool:
    """``n_workers`` processes running a searcher's trials (see the module docstring).

    Use :meth:`available` first: the families must pickle (classes defined in importable modules).

    Parameters
    ----------
    make_searcher : callable() -> Searcher
        Builds a worker's searcher (one trial at a time, on the shared storage); it must pickle,
        e.g. a :func:`functools.partial` of the searcher's class.
    families : list of str
        The families the workers search.
    n_workers : int
    n_trials, timeout : int, float or None
        The budget per family, split over the workers.
    seed : int
        Base of the workers' sampler seeds (:func:`sampler_seed`).
    show_progress_bar : bool
    """

    def __init__(
        self,
        make_searcher: Callable[[], Searcher],
        families: list[str],
        n_workers: int,
        n_trials: int | None,
        timeout: float | None,
        seed: int,
        show_progress_bar: bool = False,
    ):
        self.make_searcher = make_searcher
        self.families = list(families)
        self.n_workers = n_workers
        self.n_trials = n_trials
        self.timeout = timeout
        self.seed = seed
        self.show_progress_bar = show_progress_bar
        self._executor: ProcessPoolExecutor | None = None

    def available(self) -> bool:
        """Whether the trials can run in processes; says why in the log when not."""
        families = [get_family(name) for name in self.families]
        in_main = [f.name for f in families
                   if "__main__" in (f.estimator_class.__module__, f.search_space.__module__)]
        if in_main:  # a notebook's or script's own classes: a fresh interpreter cannot import them
            log.info("parallel trials in threads: %s defined in __main__", ", ".join(in_main))
            return False
        try:
            pickle.dumps((families, self.make_searcher))
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            log.warning("parallel trials in threads: the families do not pickle (%s)", exc)
            return False
        return True

    def _make_spec(self) -> _Spec:
        return _Spec(
            make_searcher=self.make_searcher,
            families=[get_family(name) for name in self.families],
            log_level=logging.getLogger().getEffectiveLevel(),
            # With the pool's progress bar, per-trial log lines from the workers would break it.
            optuna_verbosity=max(optuna.logging.get_verbosity(),
                                 optuna.logging.WARNING if self.show_progress_bar else 0),
        )

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self.n_workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self._make_spec(),),
            )
        return self._executor

    def optimize(self, study: optuna.Study, family: str, n_trials: int | None = -1,
                 timeout: float | None = -1.0) -> None:
        """Run the budget for ``family`` on ``study`` in the workers (``n_trials`` and ``timeout``
        override the pool's)."""
        n_trials = self.n_trials if n_trials == -1 else n_trials
        timeout = self.timeout if timeout == -1.0 else timeout
        run = uuid.uuid4().hex
        pool = self._pool()
        futures = [
            pool.submit(_run_share, family, share, timeout, sampler_seed(self.seed, i), run)
            for i, share in enumerate(trial_shares(n_trials, self.n_workers))
            if share != 0
        ]
        self._wait(study, futures, run, n_trials)
        try:
            for future in futures:
                future.result()
        except BrokenProcessPool as exc:
            self.close()  # every worker stopped first: none can start another trial meanwhile
            self._fail_orphans(study, run, exc)

    def _wait(self, study: optuna.Study, futures: list[Future], run: str, n_trials: int | None) -> None:
        bar = tqdm(total=n_trials, desc=study.study_name, unit="trial",
                   disable=not self.show_progress_bar)
        with bar:
            pending = futures
            while pending:
                _, pending = wait(pending, timeout=1.0, return_when=FIRST_EXCEPTION)
                bar.update(len(self._finished(study, run)) - bar.n)

    @staticmethod
    def _finished(study: optuna.Study, run: str) -> list:
        done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        trials = study.get_trials(deepcopy=False, states=done)
        return [t for t in trials if t.user_attrs.get(RUN_ATTR) == run]

    @staticmethod
    def _fail_orphans(study: optuna.Study, run: str, exc: BaseException) -> None:
        """Mark the trials a dead pool left running as failed, with the reason (see :func:`fail_reason`).

        A worker killed between creating a trial and tagging it leaves that trial untagged and
        running; RDB storages fail it by its missing heartbeat when a search next opens the study.
        """
        reason = f"worker process died ({type(exc).__name__}: {exc})"
        orphans = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                   if t.user_attrs.get(RUN_ATTR) == run]
        for trial in orphans:
            study.set_user_attr(f"{FAIL_REASON_ATTR}/{trial.number}", reason)
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        log.error("%s: a search worker died; %d running trial(s) marked failed (%s); the search goes on"
                  " with new workers", study.study_name, len(orphans), reason)

    def close(self) -> None:
        """Stop the workers."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
