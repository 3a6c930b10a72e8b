"""Holdout evaluation: refit every family's best parameters, score them, pick champions, export.

:class:`Trainer` splits the telemetry by time: the latest ``test_fraction`` is the holdout, and the
latest ``val_fraction`` of the rest is the validation window. For each family it takes the best
trial of its study (families without a finished study, such as the baselines, use their default
parameters; a study's best replaces the defaults only where it beats them on the validation window
with ``confidence``: :meth:`Trainer.confirm_study`) and

1. fits it on the training part before the validation window and scores the window (causal
   replay): the **validation score** that chooses the champions;
2. fits it on the whole training part
   (:meth:`DeployableModel.train <resource_prediction.deployable.DeployableModel.train>`), predicts
   the holdout with causal replay (each holdout job sees the peaks of the holdout jobs before it, as
   a scheduler would) and measures the business score, its bootstrap 95 % interval, under- and
   over-allocation, wasted GB, allocation categories and prediction time per job: the final table,
   which chooses nothing;
3. (``refit_all``) refits the exported models on every row, training and holdout, since the latest
   jobs matter most; their metadata says so (``refit``) and keeps the holdout metrics of step 2.

The oracle (when the data carries its truth columns) is a row of the same table. Champions are the
lowest validation scores among real model families, per task type; overall, the lowest replaces the
``preferred`` family (the cost-aware model) only when it is better on the validation jobs with
``confidence`` (:meth:`Trainer.choose_overall`). The holdout is not touched to choose. Files written (layout of :class:`~resource_prediction.paths.ArtifactPaths`):

* ``trained_models/<family>.pkl`` for every family, ``trained_models/champion.pkl``;
* ``trained_models/app/qe/qe_{balanced,tiny_under_alloc,small_waste}.pkl`` (see
  :mod:`~resource_prediction.training.pareto`) and ``trained_models/app/classification/<family>.pkl``
  (the best classifier);
* ``trained_models/app/cost_aware/cost_aware_safe.pkl``: the cost-aware model at the penalty that
  fails no more validation jobs than the configured request with 95 % confidence, with the least
  waste (:mod:`~resource_prediction.training.frontier`);
* ``reports/holdout_results.{csv,json}``, ``reports/holdout_predictions.parquet``,
  ``reports/search_summary.csv``, ``reports/pareto.csv``, ``reports/frontier.csv``,
  ``reports/champions.json``;
* with ``evaluate_all_archs``: ``reports/holdout_comparison.{html,png}`` and
  ``reports/allocation_categories.{html,png}`` (and ``reports/pareto_frontier.{html,png}``,
  ``reports/penalty_frontier.{html,png}``).
"""

from __future__ import annotations

import copy
import json
import logging
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from resource_prediction.data import time_split
from resource_prediction.deployable import DeployableModel, data_fingerprint
from resource_prediction.features.raw import target_gb
from resource_prediction.metrics import (
    ALLOCATION_CATEGORIES,
    DEFAULT_PENALTY,
    allocation_metrics,
    bootstrap_business_score,
    paired_bootstrap_win_rate,
)
from resource_prediction.models.base import NotApplicableError
from resource_prediction.paths import ArtifactPaths
from resource_prediction.registry import MODEL_FAMILIES, ModelFamily, get_family
from resource_prediction.registry import families as registry_families
from resource_prediction.synthetic import has_truth, oracle_allocation
from resource_prediction.training.advice import baseline_beating_champion
from resource_prediction.training.frontier import (
    SAFE_CONFIDENCE,
    SAFE_VARIANT,
    choose_safe_penalty,
    penalty_grid,
    reprices,
    sweep_penalties,
)
from resource_prediction.training.pareto import VARIANTS, choose_variants, sweep_quantile_ensemble
from resource_prediction.training.search import (
    SEARCH_TASK_TYPES,
    best_params,
    default_params,
    search_summary,
)
from resource_prediction.training.storage import STUDY_PREFIX, open_storage

__all__ = ["EvaluationResult", "Trainer", "is_quantile_ensemble"]

log = logging.getLogger(__name__)

ORACLE = "oracle"
#: ``param_source`` of a family whose study's best did not beat its defaults with confidence.
UNCONFIRMED = "defaults (study not confirmed)"
CATEGORY_COLUMNS = [f"{label} %" for label, _, _ in ALLOCATION_CATEGORIES]
RESULT_COLUMNS = [
    "family", "task_type", "business_score", "ci_low", "ci_high", "under_pct", "total_over_pct",
    "val_business_score", "val_under_pct", "val_total_over_pct",
    "mean_gb_wasted", *CATEGORY_COLUMNS, "predict_ms_per_job", "fit_seconds", "n_jobs",
    "param_source", "cv_score", "params", "error",
]


def is_quantile_ensemble(family: ModelFamily) -> bool:
    """Whether the family's model has ``alpha`` and ``safety`` (the Pareto sweep applies)."""
    return {"alpha", "safety"} <= set(family.estimator.get_params(deep=False))


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


@dataclass
class EvaluationResult:
    """What :meth:`Trainer.run` produced (frames as written to ``reports/``)."""

    holdout: pd.DataFrame
    predictions: pd.DataFrame
    champions: dict[str, str]
    pareto: pd.DataFrame | None
    search_summary: pd.DataFrame
    models: dict[str, DeployableModel] = field(repr=False)
    frontier: pd.DataFrame | None = None
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0


def warn_if_a_baseline_wins(holdout: pd.DataFrame, champions: dict[str, str]) -> None:
    """Say so when a baseline scores lower than the overall champion (small or shifting data)."""
    overall = champions.get("overall")
    top = baseline_beating_champion(holdout, overall)
    if top is None:
        return
    log.warning(
        "the baseline %s (holdout score %.1f) beats the overall champion %s (%.1f): keep the baseline,"
        " or search longer and on more data, before deploying a model",
        top["family"], top["business_score"], overall,
        holdout.set_index("family").loc[overall, "business_score"],
    )


def _described(params: dict | None, source: str) -> dict:
    """The table's ``param_source`` and ``params`` (JSON) of a family's parameters."""
    return {"param_source": source, "params": json.dumps(params or {}, sort_keys=True, default=str)}


class Trainer:
    """Refit, evaluate on the time holdout, choose champions and write the artifacts.

    Parameters
    ----------
    raw_df : DataFrame
        All telemetry (with the target); split by time here.
    paths : ArtifactPaths, optional
        Where models and reports go (default ``artifacts/``).
    storage : str or optuna storage, optional
        Where the studies are (default the SQLite file of ``paths``).
    penalty : float
        The business score's penalty.
    seed : int
        Seed of the models and of the bootstrap.
    test_fraction : float
        Share of the latest jobs held out.
    n_boot : int
        Bootstrap resamples of the business score's interval.
    threads : int
        OpenMP/BLAS threads of the fits (1 keeps a shared machine responsive).
    val_fraction : float
        Latest share of the training part that validates: it chooses the champions and scores
        the variants (quantile ensemble grid, cost-aware penalties).
    refit_all : bool
        Refit the exported models on every row (training and holdout) before writing them.
    min_val_jobs : int
        Validation jobs wanted before one window chooses: smaller data validates on up to three
        consecutive windows (:meth:`validation_windows`).
    pareto_n_alphas : int
        Quantile levels of the Pareto sweep (one model fit each).
    study_prefix : str
        Study names are ``<study_prefix>/<family>``.
    preferred : str or None
        The family that stays overall champion unless another one beats it on the validation
        jobs with ``confidence`` (:meth:`choose_overall`); None: the lowest validation score wins.
        The default, the cost-aware model, is the family built to hold up on data it was not
        tuned on (forward calibration, a guard where it lacks evidence).
    confidence : float
        Share of paired bootstrap resamples of the validation jobs in which a challenger must
        score below ``preferred`` to replace it.
    """

    def __init__(
        self,
        raw_df: pd.DataFrame,
        paths: ArtifactPaths | None = None,
        storage=None,
        penalty: float = DEFAULT_PENALTY,
        seed: int = 0,
        test_fraction: float = 0.10,
        n_boot: int = 1000,
        threads: int = 1,
        val_fraction: float = 0.15,
        refit_all: bool = True,
        min_val_jobs: int = 1000,
        pareto_n_alphas: int = 5,
        study_prefix: str = STUDY_PREFIX,
        preferred: str | None = "cost_aware_regression",
        confidence: float = 0.95,
    ):
        self.paths = paths or ArtifactPaths()
        self.storage = open_storage(storage, self.paths)
        self.penalty = penalty
        self.seed = seed
        self.test_fraction = test_fraction
        self.n_boot = n_boot
        self.threads = threads
        self.val_fraction = val_fraction
        self.refit_all = refit_all
        self.min_val_jobs = min_val_jobs
        self.pareto_n_alphas = pareto_n_alphas
        self.study_prefix = study_prefix
        self.preferred = preferred
        self.confidence = confidence
        #: Each family's validation allocations (pooled over the windows), and the peaks.
        self.validation_allocations: dict[str, np.ndarray] = {}
        self.validation_peaks: np.ndarray | None = None
        self.validation_types: np.ndarray | None = None
        #: Per family with a study, the share of validation resamples in which the study's
        #: parameters beat the defaults (:meth:`confirm_study`).
        self.param_checks: dict[str, float] = {}
        #: How the overall champion was chosen (see :meth:`choose_overall`).
        self.selection: dict = {}
        self.train_raw, self.holdout_raw = time_split(raw_df, test_fraction)
        self.fit_raw, self.val_raw = time_split(self.train_raw, val_fraction)
        self.y_holdout = target_gb(self.holdout_raw)
        self.y_val = target_gb(self.val_raw)
        if self.y_holdout is None or not np.all(np.isfinite(self.y_holdout)):
            raise ValueError("every holdout job needs a positive peak (max_rss_gb or max_rss)")

    # ------------------------------------------------------------------ selection
    @staticmethod
    def select_families(
        families: list[str] | None = None,
        task_type: str | None = None,
        evaluate_all_archs: bool = False,
    ) -> list[str]:
        """Families to evaluate: the named ones (every family of ``task_type`` when none are named
        or with ``evaluate_all_archs``), then every baseline."""
        if task_type is not None and task_type not in SEARCH_TASK_TYPES:
            raise ValueError(f"task_type must be one of {SEARCH_TASK_TYPES} or None, got {task_type!r}")
        types = [task_type] if task_type else list(SEARCH_TASK_TYPES)
        if families and not evaluate_all_archs:
            chosen = [get_family(name).name for name in families]
        else:
            chosen = [name for t in types for name in registry_families(t)]
        baselines = [name for name in registry_families("baseline") if name not in chosen]
        return chosen + baselines

    def params_for(self, family: str) -> tuple[dict | None, str, float | None]:
        """``(params, source, cv_score)``: the study's best, or ``(None, "defaults", None)``."""
        params, cv = best_params(family, self.storage, self.paths, self.study_prefix)
        return (params, "study", cv) if params is not None else (None, "defaults", None)

    # ------------------------------------------------------------------ scoring
    def score(self, alloc: np.ndarray) -> dict:
        """Holdout metrics of an allocation, with the bootstrap interval of the business score."""
        m = allocation_metrics(alloc, self.y_holdout, self.penalty)
        m["ci_low"], m["ci_high"] = bootstrap_business_score(
            alloc, self.y_holdout, self.penalty, n_boot=self.n_boot, seed=self.seed
        )
        return m

    def _row(self, family: str, task_type: str, m: dict, **extra) -> dict:
        row = {"family": family, "task_type": task_type}
        row.update({k: m.get(k, np.nan) for k in RESULT_COLUMNS if k not in ("family", "task_type")})
        row.update(extra)
        return row

    def evaluate_family(self, family: str) -> tuple[dict, DeployableModel | None, np.ndarray | None]:
        """Refit one family on the training part and score it on the holdout.

        A family that cannot be fitted or predicted gives a row with its ``error`` and no model.
        """
        fam = get_family(family)
        params, source, cv = self.params_for(family)
        extra = {**_described(params, source), "cv_score": cv, "error": ""}
        try:
            params, source, val = self.confirm_study(fam, params, source,
                                                     self.validate(fam, params, record=True))
            extra.update(_described(params, source))
            extra.update({f"val_{k}": val[k] for k in ("business_score", "under_pct", "total_over_pct")})
            start = time.perf_counter()
            model = DeployableModel.train(fam, self.train_raw, params, penalty=self.penalty, seed=self.seed)
            fit_s = time.perf_counter() - start
            start = time.perf_counter()
            alloc = np.asarray(model.predict(self.holdout_raw), dtype=float)
            predict_ms = 1000.0 * (time.perf_counter() - start) / len(self.holdout_raw)
            m = self.score(alloc)
        except NotApplicableError as exc:
            log.warning("%s does not apply to these data: %s", family, exc)
            extra["error"] = f"not applicable: {exc}"[:500]
            return self._row(family, fam.task_type, {}, **extra), None, None
        except Exception as exc:
            log.exception("%s: evaluation failed", family)
            extra["error"] = f"{type(exc).__name__}: {exc}"[:500]
            return self._row(family, fam.task_type, {}, **extra), None, None
        m.update(predict_ms_per_job=predict_ms, fit_seconds=fit_s)
        model.set_holdout_metrics(m)
        model.metadata.update(param_source=source, cv_score=cv, validation_metrics=val)
        log.info("%s: validation %.1f; holdout business score %.1f [%.1f, %.1f], under %.2f %%, over %.1f %% (%s params)",
                 family, val["business_score"], m["business_score"], m["ci_low"], m["ci_high"], m["under_pct"],
                 m["total_over_pct"], source)
        return self._row(family, fam.task_type, m, **extra), model, alloc

    def confirm_study(self, family: ModelFamily, params: dict | None, source: str,
                      val: dict) -> tuple[dict | None, str, dict]:
        """``(params, source, validation metrics)``: the study's best parameters (``source``
        ``"study"``; others are returned as they are) if they beat the family's defaults on the
        validation jobs with ``confidence``, else the defaults.

        The study's best is the lowest of a few noisy cross-validation scores: on a workflow trace
        of a thousand tasks one failure more or less in a fold decides it, and the parameters
        that won there did worse on the later tasks than the defaults, which were chosen on every
        scenario. So the defaults stay unless the study's parameters beat them in ``confidence``
        of the paired bootstrap resamples of the validation task types (as :meth:`choose_overall`
        asks of a challenger). The share is kept in :attr:`param_checks`.
        """
        if source != "study" or params == default_params(family.name):
            return params, source, val
        study = self.validation_allocations[family.name]
        default_val = self.validate(family, None, record=True)
        defaults = self.validation_allocations[family.name]
        rate = paired_bootstrap_win_rate(study, defaults, self.validation_peaks, self.penalty,
                                         seed=self.seed, clusters=self.validation_types)
        self.param_checks[family.name] = rate
        log.info("%s: the study's parameters beat the defaults in %.0f %% of the validation resamples",
                 family.name, 100 * rate)
        if rate >= self.confidence:
            self.validation_allocations[family.name] = study
            return params, "study", val
        return None, UNCONFIRMED, default_val

    def validation_windows(self) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
        """``(fit rows, validation rows)`` pairs, the latest window first.

        One window (the latest ``val_fraction`` of the training part) when it holds at least
        ``min_val_jobs`` jobs; on smaller data up to three consecutive windows of that size, each
        fitted on everything before it, so that one short stretch of a workflow does not choose
        the champion alone.
        """
        windows = [(self.fit_raw, self.val_raw)]
        size = len(self.val_raw)
        while sum(len(v) for _, v in windows) < self.min_val_jobs and len(windows) < 3:
            end = len(self.train_raw) - size * len(windows)
            if end - size < size:  # keep at least as many fitting rows as validated ones
                break
            windows.append((self.train_raw.iloc[: end - size], self.train_raw.iloc[end - size : end]))
        return windows

    def validate(self, family: ModelFamily, params: dict | None, record: bool = False) -> dict:
        """Metrics of ``family`` fitted before each validation window and replayed over it
        (pooled over the windows of :meth:`validation_windows`); ``record`` keeps the
        allocations in :attr:`validation_allocations` for :meth:`choose_overall`."""
        alloc, peaks, types = [], [], []
        for fit_raw, val_raw in self.validation_windows():
            model = DeployableModel.train(family, fit_raw, params, penalty=self.penalty, seed=self.seed)
            alloc.append(np.asarray(model.predict(val_raw), dtype=float))
            peaks.append(target_gb(val_raw))
            types.append(val_raw["component"].astype("str").to_numpy())
        alloc, peaks = np.concatenate(alloc), np.concatenate(peaks)
        if record:
            self.validation_allocations[family.name] = alloc
            self.validation_peaks, self.validation_types = peaks, np.concatenate(types)
        return allocation_metrics(alloc, peaks, self.penalty)

    def refit(self, model: DeployableModel) -> DeployableModel:
        """``model``'s family and parameters fitted on every row (training and holdout).

        The new model keeps the metadata of ``model`` that describes how it was chosen and
        scored (holdout and validation metrics, variant, champion) and says in ``refit`` which
        rows it was fitted on.
        """
        meta = model.metadata
        full = pd.concat([self.train_raw, self.holdout_raw])
        params = meta.get("params") or None
        out = DeployableModel.train(meta["family"], full, params, penalty=self.penalty, seed=self.seed)
        for key in ("holdout_metrics", "validation_metrics", "param_source", "cv_score", "variant",
                    "champion"):
            if key in meta:
                out.metadata[key] = meta[key]
        out.metadata["refit"] = {
            "rows": "all: training part and holdout",
            "n_rows": len(full),
            "holdout_metrics_from": "the same family and parameters fitted on the training part only",
        }
        return out

    # ------------------------------------------------------------------ running
    def run(
        self,
        families: list[str] | None = None,
        task_type: str | None = None,
        evaluate_all_archs: bool = False,
        write: bool = True,
        pareto: bool = True,
        charts: bool | None = None,
    ) -> EvaluationResult:
        """Evaluate the selected families (see :meth:`select_families`), pick champions, export
        the Pareto variants and the best classifier, and (``write``) save models and reports.

        ``charts`` (default: ``evaluate_all_archs``) also writes the comparison charts.
        """
        start = time.perf_counter()
        names = self.select_families(families, task_type, evaluate_all_archs)
        log.info("evaluating %d families on %d training / %d holdout jobs (penalty %g)",
                 len(names), len(self.train_raw), len(self.holdout_raw), self.penalty)
        rows, models, preds = [], {}, {}
        with threadpool_limits(limits=self.threads):
            for name in names:
                row, model, alloc = self.evaluate_family(name)
                rows.append(row)
                if model is not None:
                    models[name], preds[name] = model, alloc
            if has_truth(self.holdout_raw):
                alloc = oracle_allocation(self.holdout_raw, self.penalty)
                rows.append(self._row(ORACLE, ORACLE, self.score(alloc), param_source="truth",
                                      params="{}", error=""))
                preds[ORACLE] = alloc
            holdout = pd.DataFrame(rows, columns=RESULT_COLUMNS)
            holdout = holdout.sort_values("business_score", kind="stable", na_position="last")
            holdout = holdout.reset_index(drop=True)
            champions = self.champions(holdout)
            if "overall" in champions:
                champions["overall"] = self.choose_overall(champions["overall"])
            warn_if_a_baseline_wins(holdout, champions)
            pareto_points = self.pareto(holdout, models) if pareto else None
            frontier_points = self.frontier(holdout, models) if pareto else None
        predictions = self._predictions_frame(preds)
        summary = search_summary(list(MODEL_FAMILIES), self.storage, self.paths, self.study_prefix)
        result = EvaluationResult(holdout, predictions, champions, pareto_points, summary, models,
                                  frontier=frontier_points)
        if write:
            result.files = self.write(result, evaluate_all_archs if charts is None else charts)
        result.seconds = time.perf_counter() - start
        log.info("evaluation done in %.0f s; champions: %s", result.seconds, champions)
        return result

    @staticmethod
    def champions(holdout: pd.DataFrame) -> dict[str, str]:
        """Lowest validation score per task type and ``overall`` (real model families only).

        The validation window lies inside the training period: the holdout chooses nothing.
        """
        key = "val_business_score"
        real = holdout[holdout["task_type"].isin(SEARCH_TASK_TYPES) & holdout[key].notna()]
        out = {}
        for task, part in real.groupby("task_type"):
            out[str(task)] = str(part.loc[part[key].idxmin(), "family"])
        if not real.empty:
            out["overall"] = str(real.loc[real[key].idxmin(), "family"])
        return out

    def choose_overall(self, lowest: str) -> str:
        """The overall champion: ``lowest`` (the lowest validation score) if it beats
        ``preferred`` with ``confidence``, else ``preferred``.

        Validation windows on small data hold a few hundred jobs, where a handful of failures
        decides; a paired bootstrap asks whether the lower score would hold up. It resamples
        task types, not jobs: jobs of one type are alike, and a family that suits the window's
        busiest type wins nearly every resample of its jobs. On the methylseq trace the lowest
        validation score (80 against 93) came from a family that scored 139 on the later jobs,
        the cost-aware model 70; with a third of its task types new in the later jobs, that
        family was better in 100 % of the job resamples and scored 162, the cost-aware model 86.
        With one task type every resample is the whole window, and the lower score wins.
        What was decided is kept in :attr:`selection` and written to ``champions.json``.
        """
        self.selection = {"lowest_validation_score": lowest, "preferred": self.preferred,
                          "confidence": self.confidence}
        allocs = self.validation_allocations
        if self.preferred is None or lowest == self.preferred or self.preferred not in allocs \
                or lowest not in allocs:
            self.selection.update(overall=lowest, rule="lowest validation score")
            return lowest
        rate = paired_bootstrap_win_rate(allocs[lowest], allocs[self.preferred],
                                         self.validation_peaks, self.penalty, seed=self.seed,
                                         clusters=self.validation_types)
        chosen = lowest if rate >= self.confidence else self.preferred
        self.selection.update(overall=chosen, win_rate=rate, rule=(
            f"{lowest} scored below {self.preferred} in {100 * rate:.0f} % of the paired bootstrap"
            f" resamples of the validation task types ({'at least' if chosen == lowest else 'below'}"
            f" {100 * self.confidence:.0f} %)"
        ))
        log.info("overall champion %s: %s", chosen, self.selection["rule"])
        return chosen

    def _predictions_frame(self, preds: dict[str, np.ndarray]) -> pd.DataFrame:
        base = pd.DataFrame({
            "time": self.holdout_raw["time"].to_numpy(),
            "component": self.holdout_raw["component"].astype("str").to_numpy(),
            "actual_gb": self.y_holdout,
        })
        frames = [base.assign(family=name, allocated_gb=alloc) for name, alloc in preds.items()]
        if not frames:
            return base.assign(family=pd.Series(dtype="str"), allocated_gb=np.nan).iloc[:0]
        return pd.concat(frames, ignore_index=True)[["family", "time", "component", "actual_gb", "allocated_gb"]]

    # ------------------------------------------------------------------ pareto
    def pareto(self, holdout: pd.DataFrame, models: dict[str, DeployableModel]) -> pd.DataFrame | None:
        """Sweep the best quantile-ensemble family, keep the frontier, build the three variants.

        The variants are refitted on the whole training part and scored on the holdout; they are
        kept in ``self.variants`` (saved by :meth:`write`).
        """
        self.variants: dict[str, DeployableModel] = {}
        qe = [n for n in holdout["family"] if n in models and is_quantile_ensemble(get_family(n))]
        if not qe:
            log.info("no quantile-ensemble family evaluated: no Pareto sweep")
            return None
        name = qe[0]  # the table is sorted by holdout score
        fam = get_family(name)
        params, _, _ = self.params_for(name)
        start = time.perf_counter()
        points = sweep_quantile_ensemble(
            fam, self.train_raw, params, penalty=self.penalty, seed=self.seed,
            val_fraction=self.val_fraction, n_alphas=self.pareto_n_alphas,
        )
        chosen = choose_variants(points)
        points.insert(0, "family", name)
        points["variant"] = ""
        for col in ("holdout_under_pct", "holdout_total_over_pct", "holdout_business_score"):
            points[col] = np.nan
        by_alpha: dict[float, DeployableModel] = {}
        for variant in VARIANTS:
            idx = chosen[variant]
            alpha, safety = float(points.at[idx, "alpha"]), float(points.at[idx, "safety"])
            points.at[idx, "variant"] = (
                variant if not points.at[idx, "variant"] else f"{points.at[idx, 'variant']},{variant}"
            )
            if alpha not in by_alpha:
                by_alpha[alpha] = DeployableModel.train(
                    fam, self.train_raw, {**(params or {}), "alpha": alpha, "safety": 1.0},
                    penalty=self.penalty, seed=self.seed,
                )
            model = copy.deepcopy(by_alpha[alpha])
            model.model.set_params(safety=safety)
            model.metadata["params"] = {**model.metadata["params"], "alpha": alpha, "safety": safety}
            model.metadata["estimator_params"]["safety"] = safety
            t0 = time.perf_counter()
            alloc = model.predict(self.holdout_raw)
            m = self.score(alloc)
            m["predict_ms_per_job"] = 1000.0 * (time.perf_counter() - t0) / len(self.holdout_raw)
            model.set_holdout_metrics(m)
            model.metadata["variant"] = variant
            model.metadata["validation_metrics"] = {
                k: float(points.at[idx, k]) for k in ("under_pct", "total_over_pct", "business_score")
            }
            points.loc[idx, ["holdout_under_pct", "holdout_total_over_pct", "holdout_business_score"]] = [
                m["under_pct"], m["total_over_pct"], m["business_score"]
            ]
            self.variants[variant] = model
            log.info("%s: alpha %.4f safety %.3f; holdout under %.2f %%, over %.1f %%, score %.1f",
                     variant, alpha, safety, m["under_pct"], m["total_over_pct"], m["business_score"])
        self._check_variant_order()
        log.info("Pareto sweep of %s: %d points, %d on the frontier, in %.0f s", name, len(points),
                 int(points["on_frontier"].sum()), time.perf_counter() - start)
        return points

    def frontier(self, holdout: pd.DataFrame, models: dict[str, DeployableModel]) -> pd.DataFrame | None:
        """Sweep the penalty of the best-validated family that re-prices (the cost-aware model) over
        the validation window; export the safe variant (:mod:`~resource_prediction.training.frontier`).

        The variant is refitted on the training part at the chosen penalty, scored on the
        holdout and kept in ``self.variants``.
        """
        if not hasattr(self, "variants"):
            self.variants = {}
        table = holdout.set_index("family")
        ranked = holdout.sort_values("val_business_score", kind="stable")["family"]
        names = [n for n in ranked if n in models and reprices(models[n].model)]
        if not names or "configured_request" not in table.index:
            log.info("no family that re-prices with its penalty, or no configured request: no frontier")
            return None
        name, start = names[0], time.perf_counter()
        fam = get_family(name)
        params, _, _ = self.params_for(name)
        fitted = DeployableModel.train(fam, self.fit_raw, params, penalty=self.penalty, seed=self.seed)
        points = sweep_penalties(
            fitted.model, fitted.preprocessor.transform(self.val_raw), self.y_val, penalty_grid()
        )
        points.insert(0, "family", name)
        points["variant"] = ""
        for col in ("holdout_under_pct", "holdout_total_over_pct", "holdout_business_score"):
            points[col] = np.nan
        today = float(table.loc["configured_request", "val_under_pct"])
        chosen = choose_safe_penalty(points, today)
        if chosen is None:
            log.info("no penalty up to %g keeps %s at or below the configured request's %.2f %% "
                     "under-allocation on the validation window with %.0f %% confidence: no safe "
                     "variant", points["penalty"].max(), name, today, 100 * SAFE_CONFIDENCE)
            return points
        model = DeployableModel.train(fam, self.train_raw, {**(params or {}), "penalty": chosen},
                                      penalty=self.penalty, seed=self.seed)
        m = self.score(np.asarray(model.predict(self.holdout_raw), dtype=float))
        model.set_holdout_metrics(m)
        idx = points.index[points["penalty"] == chosen][0]
        model.metadata.update(variant=SAFE_VARIANT, validation_metrics={
            k: float(points.at[idx, k]) for k in ("under_pct", "total_over_pct", "business_score")
        })
        points.loc[idx, "variant"] = SAFE_VARIANT
        points.loc[idx, ["holdout_under_pct", "holdout_total_over_pct", "holdout_business_score"]] = [
            m["under_pct"], m["total_over_pct"], m["business_score"]
        ]
        self.variants[SAFE_VARIANT] = model
        log.info("%s: %s at penalty %g; holdout under %.2f %% (configured request %.2f %%), over %.1f %% "
                 "(request %.1f %%); frontier in %.0f s", SAFE_VARIANT, name, chosen, m["under_pct"],
                 table.loc["configured_request", "under_pct"], m["total_over_pct"],
                 table.loc["configured_request", "total_over_pct"], time.perf_counter() - start)
        return points

    def _check_variant_order(self) -> None:
        m = {v: self.variants[v].holdout_metrics for v in VARIANTS}
        unders = [m[v]["under_pct"] for v in VARIANTS]
        overs = [m[v]["total_over_pct"] for v in VARIANTS]
        if unders != sorted(unders) or overs != sorted(overs, reverse=True):
            log.warning("on the holdout the QE variants do not order as on the validation slice: "
                        "under %s, over %s (tiny_under, balanced, small_waste)", unders, overs)

    # ------------------------------------------------------------------ writing
    def provenance(self) -> dict:
        """Data, code and settings of this evaluation."""
        return {
            "created_at": datetime.now(UTC).isoformat(),
            "git_commit": _git_commit(),
            "data_sha256": data_fingerprint(pd.concat([self.train_raw, self.holdout_raw])),
            "n_train": len(self.train_raw),
            "n_holdout": len(self.holdout_raw),
            "holdout_start": str(self.holdout_raw["time"].min()),
            "test_fraction": self.test_fraction,
            "validation_start": str(self.val_raw["time"].min()),
            "val_fraction": self.val_fraction,
            "champions_chosen_on": "validation window inside the training period",
            "preferred_family": self.preferred,
            "preference_confidence": self.confidence,
            "exported_models_fitted_on": "all rows" if self.refit_all else "training part",
            "penalty": self.penalty,
            "seed": self.seed,
            "n_boot": self.n_boot,
        }

    def _exported(self, result: EvaluationResult) -> None:
        """Refit every exported model on all rows (``refit_all``), in place."""
        if not self.refit_all:
            return
        start = time.perf_counter()
        result.models = {name: self.refit(model) for name, model in result.models.items()}
        self.variants = {name: self.refit(model) for name, model in getattr(self, "variants", {}).items()}
        log.info("exported models refitted on all %d rows in %.0f s",
                 len(self.train_raw) + len(self.holdout_raw), time.perf_counter() - start)

    def write(self, result: EvaluationResult, charts: bool = False) -> list[Path]:
        """Save models and reports (see the module docstring); return the files written."""
        paths = self.paths.ensure()
        files: list[Path] = []
        self._exported(result)
        for name, model in result.models.items():
            files.append(model.save(paths.models / f"{name}.pkl"))
        overall = result.champions.get("overall")
        if overall:
            champion = copy.deepcopy(result.models[overall])
            champion.metadata["champion"] = {k: v for k, v in result.champions.items()}
            files.append(champion.save(paths.models / "champion.pkl"))
        app = paths.models / "app"
        for variant, model in getattr(self, "variants", {}).items():
            folder = "qe" if variant in VARIANTS else "cost_aware"
            files.append(model.save(app / folder / f"{variant}.pkl"))
        best_clf = result.champions.get("classification")
        if best_clf:
            files.append(result.models[best_clf].save(app / "classification" / f"{best_clf}.pkl"))

        reports = paths.reports
        holdout_csv = reports / "holdout_results.csv"
        result.holdout.to_csv(holdout_csv, index=False)
        holdout_json = reports / "holdout_results.json"
        holdout_json.write_text(result.holdout.to_json(orient="records", indent=2))
        predictions = reports / "holdout_predictions.parquet"
        result.predictions.to_parquet(predictions, index=False)
        summary = reports / "search_summary.csv"
        result.search_summary.to_csv(summary, index=False)
        champions = reports / "champions.json"
        champions.write_text(json.dumps(
            {"champions": result.champions, "selection": self.selection,
             "provenance": self.provenance()}, indent=2, default=str
        ))
        files += [holdout_csv, holdout_json, predictions, summary, champions]
        for name, frame in (("pareto", result.pareto), ("frontier", result.frontier)):
            if frame is not None:
                files.append(reports / f"{name}.csv")
                frame.to_csv(files[-1], index=False)
        if charts:
            from resource_prediction.plots.evaluation import (
                allocation_category_chart,
                comparison_chart,
                frontier_chart,
                pareto_chart,
                write_figures,
            )

            figures = {
                reports / "holdout_comparison": comparison_chart(result.holdout),
                reports / "allocation_categories": allocation_category_chart(result.holdout),
            }
            if result.pareto is not None:
                figures[reports / "pareto_frontier"] = pareto_chart(result.pareto)
            if result.frontier is not None:
                figures[reports / "penalty_frontier"] = frontier_chart(
                    result.frontier, result.pareto, result.holdout
                )
            files += write_figures(figures)
        return files
