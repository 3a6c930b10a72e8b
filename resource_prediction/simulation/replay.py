"""Replay held-out jobs through a deployed model, as a scheduler would: :class:`ReplaySimulation`.

For each job, in time order, the model predicts the allocation from what is known before the job
runs (the raw row without its outcome columns: ``max_rss``, ``max_cache``, ``memory_fail_count``,
``ts_status``); then the job "finishes": its peak is revealed and the full row is fed back with
``observe``, so the model's history features see it for the next jobs. A step of ``n`` jobs does
exactly this for each of the ``n`` jobs in turn, so the allocations never depend on the batch size.

The running counters are :func:`resource_prediction.metrics.allocation_metrics` on the jobs replayed
so far, plus the memory saved against the configured request (``memreq_gb``). Nothing here imports
ipywidgets: the widget layer (:mod:`resource_prediction.simulation.widgets`) only binds this class to
controls.
"""

from __future__ import annotations

import contextlib
import copy
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import ThreadpoolController

from resource_prediction.data import BYTES_PER_GB, MB_PER_GB, load_telemetry, time_split
from resource_prediction.metrics import DEFAULT_PENALTY, allocation_metrics
from resource_prediction.paths import ArtifactPaths

__all__ = [
    "OUTCOME_COLUMNS",
    "ReplaySimulation",
    "StepResult",
    "load_simulation_jobs",
]

#: Raw columns only known once a job has run: never shown to the model before the job.
OUTCOME_COLUMNS: tuple[str, ...] = (
    "max_rss", "max_rss_gb", "max_cache", "memory_fail_count", "ts_status",
)


@dataclass
class StepResult:
    """The jobs one :meth:`ReplaySimulation.step` replayed (positions ``start`` to ``stop``)."""

    start: int
    stop: int
    time: np.ndarray
    allocated_gb: np.ndarray
    peak_gb: np.ndarray
    request_gb: np.ndarray
    explanation: dict | None = None

    @property
    def n_jobs(self) -> int:
        return self.stop - self.start

    @property
    def under(self) -> np.ndarray:
        """Which of the step's jobs were under-allocated (allocation below the peak)."""
        return self.allocated_gb < self.peak_gb


@dataclass
class _TrackedModel:
    """A model of the replay: its pristine copy (for reset) and how many replayed jobs it observed."""

    pristine: Any
    working: Any
    observed: int = 0
    info: dict = field(default_factory=dict)


@functools.cache
def _thread_controller() -> ThreadpoolController:
    """The native thread pools of the loaded libraries (found once: finding them costs ms)."""
    return ThreadpoolController()


def load_simulation_jobs(
    data_path: str | Path | None = None,
    artifacts_dir: str | Path = "artifacts",
    *,
    holdout_only: bool = True,
    test_fraction: float = 0.10,
    seed: int = 0,
) -> pd.DataFrame:
    """The jobs to replay: the time holdout of a telemetry file, sorted by time.

    Parameters
    ----------
    data_path : str or Path, optional
        Raw telemetry (CSV or Parquet). Empty or None: the default data of ``artifacts_dir``
        (generated once with ``seed`` when missing, as ``resource-prediction summary`` does).
    artifacts_dir : str or Path
        Artifacts directory holding ``data/default_telemetry.csv``.
    holdout_only : bool
        Keep only the latest ``test_fraction`` of the jobs (the evaluation holdout, which the
        trained models never saw); False replays the whole file.
    test_fraction : float
        Share of the latest jobs held out (as :func:`~resource_prediction.data.time_split`).
    seed : int
        Seed of the default data when it has to be generated.
    """
    if data_path is None or str(data_path).strip() == "":
        from resource_prediction.data import ensure_default_data

        path = ensure_default_data(ArtifactPaths(Path(artifacts_dir)), seed=seed)
    else:
        path = Path(str(data_path).strip()).expanduser()
    df = load_telemetry(path)
    if holdout_only:
        _, df = time_split(df, test_fraction=test_fraction)
    return df.reset_index(drop=True)


def _gb_column(df: pd.DataFrame, gb: str, raw: str, per_gb: float, *, required: bool) -> np.ndarray:
    if gb in df.columns:
        return pd.to_numeric(df[gb], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    if raw in df.columns:
        values = pd.to_numeric(df[raw], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        return values / per_gb
    if required:
        raise ValueError(f"the jobs to replay need {gb!r} or {raw!r}; got columns {list(df.columns)[:20]}")
    return np.full(len(df), np.nan)


class ReplaySimulation:
    """Replay jobs in time order through a model: predict before each job, observe after it.

    Parameters
    ----------
    jobs : pandas.DataFrame
        Raw telemetry with the peak (``max_rss_gb`` or ``max_rss``), e.g. from
        :func:`load_simulation_jobs`. Sorted by time here (stable).
    penalty : float
        Penalty of the business score.
    threads : int or None
        Threads of the native libraries (OpenMP, BLAS) during a step: a single job is predicted
        fastest on one thread (no thread wake-ups); None leaves the libraries' settings.

    Attributes
    ----------
    position : int
        Jobs replayed so far.
    model_name : str or None
        Name of the active model.

    Examples
    --------
    >>> sim = ReplaySimulation(holdout)                      # doctest: +SKIP
    >>> sim.set_model("balanced", DeployableModel.load(p))   # doctest: +SKIP
    >>> sim.step(10).allocated_gb                            # doctest: +SKIP
    >>> sim.metrics()["business_score"]                      # doctest: +SKIP
    """

    def __init__(
        self, jobs: pd.DataFrame, penalty: float = DEFAULT_PENALTY, threads: int | None = 1
    ) -> None:
        if not isinstance(jobs, pd.DataFrame) or jobs.empty:
            raise ValueError("the replay needs a non-empty DataFrame of raw telemetry jobs")
        if "time" not in jobs.columns:
            raise ValueError("the jobs to replay need a 'time' column")
        jobs = jobs.copy()
        jobs["time"] = pd.to_datetime(jobs["time"], utc=True, format="mixed")
        jobs = jobs.sort_values("time", kind="stable").reset_index(drop=True)
        peak = _gb_column(jobs, "max_rss_gb", "max_rss", BYTES_PER_GB, required=True)
        if not np.all(np.isfinite(peak) & (peak > 0)):
            raise ValueError("every job to replay needs a positive peak (max_rss)")
        self.jobs = jobs
        self.penalty = float(penalty)
        self.threads = threads
        hidden = [c for c in jobs.columns if c in OUTCOME_COLUMNS or str(c).startswith("truth_")]
        #: What a scheduler knows before the job runs.
        self._inputs = jobs.drop(columns=hidden)
        self._peak = peak
        self._request = _gb_column(jobs, "memreq_gb", "memreq", MB_PER_GB, required=False)
        #: Job times as naive UTC datetime64 (what plotly draws fast).
        self._time = jobs["time"].dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
        self._alloc = np.full(len(jobs), np.nan)
        self._model_index = np.full(len(jobs), -1, dtype=np.int64)
        self._models: dict[str, _TrackedModel] = {}
        self.model_name: str | None = None
        self.position = 0

    # ------------------------------------------------------------------ state
    @property
    def n_jobs(self) -> int:
        """Jobs in the replay."""
        return len(self._peak)

    @property
    def done(self) -> bool:
        """Whether every job has been replayed."""
        return self.position >= self.n_jobs

    @property
    def model(self) -> Any:
        """The active model (brought up to date with the replayed jobs), or None."""
        return None if self.model_name is None else self._models[self.model_name].working

    @property
    def model_names(self) -> list[str]:
        """Models registered so far, in order of registration."""
        return list(self._models)

    def history(self) -> pd.DataFrame:
        """The replayed jobs: time, allocation, peak, request, model name, under-allocated."""
        p = self.position
        names = np.array(list(self._models) + [""], dtype=object)
        return pd.DataFrame(
            {
                "time": self._time[:p],
                "allocated_gb": self._alloc[:p],
                "peak_gb": self._peak[:p],
                "request_gb": self._request[:p],
                "model": names[self._model_index[:p]],
                "under": self._alloc[:p] < self._peak[:p],
            }
        )

    # ------------------------------------------------------------------ models
    def set_model(self, name: str, model: Any | None = None) -> Any:
        """Make ``name`` the active model; with ``model``, register it first (replacing any).

        ``model`` must be in its deployed state (history up to its training data): a pristine copy
        is kept for :meth:`reset`. The active model is brought up to date before it predicts: it
        observes the jobs already replayed, so switching mid-replay keeps the replay position and
        the new model's history does not lag. Returns the active (working) model.
        """
        if model is not None:
            if not (hasattr(model, "predict") and hasattr(model, "observe")):
                raise TypeError(f"a replay model needs predict and observe; got {type(model).__name__}")
            self._models.pop(name, None)
            self._models[name] = _TrackedModel(pristine=copy.deepcopy(model), working=model)
        elif name not in self._models:
            raise KeyError(f"no model named {name!r}; registered: {self.model_names}")
        self.model_name = name
        self._catch_up(self._models[name])
        return self._models[name].working

    def _catch_up(self, tracked: _TrackedModel) -> None:
        """Bring a model's history to the replay position (restoring it first after a reset)."""
        if tracked.observed > self.position:
            tracked.working = copy.deepcopy(tracked.pristine)
            tracked.observed = 0
        if tracked.observed < self.position:
            tracked.working.observe(self.jobs.iloc[tracked.observed : self.position])
            tracked.observed = self.position

    def reset(self) -> None:
        """Back to the first job; models return to their deployed state (the active one now)."""
        self.position = 0
        self._alloc[:] = np.nan
        self._model_index[:] = -1
        if self.model_name is not None:
            self._catch_up(self._models[self.model_name])

    # ------------------------------------------------------------------ replay
    def step(self, n: int = 1, *, explain: bool = False) -> StepResult:
        """Replay the next ``n`` jobs (fewer at the end): predict each, then observe it.

        With ``explain``, the model's ``explain`` of the step's last job (computed before it is
        observed, instead of ``predict`` when it gives ``allocation_gb``) is returned in
        :attr:`StepResult.explanation`.
        """
        if self.model_name is None:
            raise RuntimeError("no model selected: call set_model first")
        n = int(n)
        if n < 1:
            raise ValueError(f"a step replays at least one job, got n={n}")
        tracked = self._models[self.model_name]
        self._catch_up(tracked)
        model = tracked.working
        code = list(self._models).index(self.model_name)
        start = self.position
        stop = min(start + n, self.n_jobs)
        explanation = None
        limit = (
            contextlib.nullcontext() if self.threads is None
            else _thread_controller().limit(limits=self.threads)
        )
        with limit:
            for i in range(start, stop):
                row = self._inputs.iloc[i : i + 1]
                if explain and i == stop - 1:
                    # explain gives the allocation with the display information: one call, not two.
                    explanation = self._explain(model, row)
                    alloc = np.asarray(
                        [explanation["allocation_gb"]] if "allocation_gb" in explanation
                        else model.predict(row), dtype=np.float64,
                    ).ravel()
                else:
                    alloc = np.asarray(model.predict(row), dtype=np.float64).ravel()
                if alloc.size != 1 or not np.isfinite(alloc[0]):
                    raise ValueError(f"{self.model_name}: predict returned {alloc!r} for job {i}")
                self._alloc[i] = alloc[0]
                self._model_index[i] = code
                model.observe(self.jobs.iloc[i : i + 1])
                self.position = i + 1
                tracked.observed = self.position
        return StepResult(
            start=start,
            stop=stop,
            time=self._time[start:stop],
            allocated_gb=self._alloc[start:stop].copy(),
            peak_gb=self._peak[start:stop],
            request_gb=self._request[start:stop],
            explanation=explanation,
        )

    def run(self, n: int | None = None, *, causal_batch: bool = False) -> StepResult:
        """Replay ``n`` more jobs (all the rest when None) in one step.

        ``causal_batch=True`` predicts the jobs in one call on their full rows: the model's causal
        replay, where each job sees the peaks of the earlier jobs only, as if each had been
        observed before the next was predicted. The allocations are those of job-by-job steps
        (tested), computed much faster: for long offline replays such as the book's animation.
        """
        remaining = self.n_jobs - self.position
        count = max(1, remaining if n is None else min(n, remaining))
        if not causal_batch or remaining == 0:
            return self.step(count)
        if self.model_name is None:
            raise RuntimeError("no model selected: call set_model first")
        tracked = self._models[self.model_name]
        self._catch_up(tracked)
        start, stop = self.position, self.position + count
        rows = self.jobs.iloc[start:stop]
        alloc = np.asarray(tracked.working.predict(rows), dtype=np.float64).ravel()
        if alloc.shape != (count,) or not np.all(np.isfinite(alloc)):
            raise ValueError(f"{self.model_name}: predict returned non-finite or missing allocations")
        tracked.working.observe(rows)
        self._alloc[start:stop] = alloc
        self._model_index[start:stop] = list(self._models).index(self.model_name)
        self.position = tracked.observed = stop
        return StepResult(
            start=start, stop=stop, time=self._time[start:stop], allocated_gb=alloc.copy(),
            peak_gb=self._peak[start:stop], request_gb=self._request[start:stop],
        )

    @staticmethod
    def _explain(model: Any, row: pd.DataFrame) -> dict:
        """The model's ``explain`` of one row as a dict (empty when the model has none)."""
        explain = getattr(model, "explain", None)
        if explain is None:
            return {}
        out = explain(row)
        if isinstance(out, pd.DataFrame):
            return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in out.iloc[0].items()}
        if isinstance(out, list | tuple):
            return dict(out[0]) if out else {}
        return dict(out) if out is not None else {}

    # ------------------------------------------------------------------ counters
    def metrics(self) -> dict[str, float | int]:
        """Counters of the replayed jobs.

        :func:`~resource_prediction.metrics.allocation_metrics` of the allocations (``n_jobs``,
        ``under_pct``, ``total_over_pct``, ``business_score``, ...), plus, over the jobs with a
        configured request: ``request_gb`` and ``allocated_vs_request_gb`` (their sums),
        ``saved_gb`` (request minus allocation, GB) and ``saved_pct`` (of the request), and
        ``request_business_score`` (the configured request's own score on the same jobs).
        Empty replay: ``{"n_jobs": 0}``.
        """
        p = self.position
        if p == 0:
            return {"n_jobs": 0}
        alloc, peak, request = self._alloc[:p], self._peak[:p], self._request[:p]
        out = allocation_metrics(alloc, peak, penalty=self.penalty)
        has_request = np.isfinite(request) & (request >= 0)
        if has_request.any():
            req_total = float(request[has_request].sum())
            alloc_total = float(alloc[has_request].sum())
            out["request_gb"] = req_total
            out["allocated_vs_request_gb"] = alloc_total
            out["saved_gb"] = req_total - alloc_total
            out["saved_pct"] = 100.0 * (req_total - alloc_total) / req_total if req_total > 0 else 0.0
            out["request_business_score"] = allocation_metrics(
                request[has_request], peak[has_request], penalty=self.penalty
            )["business_score"]
        return out
