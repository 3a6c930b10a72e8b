"""``resource-prediction search`` and ``resource-prediction evaluate``: thin wrappers over the library.

Both take the raw telemetry (``--data``; the generated default data when omitted), split it by time
(the latest 10 % is the holdout, never searched on) and read or write the Optuna studies in
``--storage`` (default ``<artifacts>/studies/optuna.db``; see
:mod:`resource_prediction.training.storage` for journal files and PostgreSQL).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from resource_prediction.data import (
    add_format_flags,
    ensure_default_data,
    format_options,
    load_telemetry,
    time_split,
)
from resource_prediction.metrics import DEFAULT_PENALTY
from resource_prediction.paths import DEFAULT_ARTIFACTS_DIR, ArtifactPaths
from resource_prediction.training.search import (
    DEFAULT_FOLDS,
    SEARCH_TASK_TYPES,
    HyperparameterSearcher,
)

__all__ = ["add_evaluate", "add_search", "cmd_evaluate", "cmd_search"]

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = ["family", "status", "best_value", "n_trials", "n_complete", "n_pruned", "n_failed"]


def _load(args: argparse.Namespace) -> tuple[ArtifactPaths, object]:
    paths = ArtifactPaths(Path(args.artifacts_dir))
    data = Path(args.data) if args.data else ensure_default_data(paths, seed=args.seed)
    return paths, load_telemetry(data, **format_options(args))


def cmd_search(args: argparse.Namespace) -> int:
    """Search; write ``reports/search_summary.csv``; exit 1 if a family had no successful trial."""
    paths, df = _load(args)
    train, _ = time_split(df, args.test_fraction)
    searcher = HyperparameterSearcher(
        train,
        families=args.model_family,
        task_type=args.task_type,
        n_trials=args.n_trials,
        timeout=args.timeout,
        n_jobs=args.n_jobs,
        storage=args.storage,
        penalty=args.penalty,
        seed=args.seed,
        n_folds=args.folds,
        paths=paths,
        show_progress_bar=not args.no_progress_bar,
    )
    results = searcher.run()
    summary = searcher.summary()  # the whole studies, including other workers' trials
    target = paths.ensure().reports / "search_summary.csv"
    summary.to_csv(target, index=False)
    print(summary[SUMMARY_COLUMNS].to_string(index=False))
    print(f"wrote {target}")
    failed = [name for name, r in results.items() if r.status != "ok"]
    if failed:
        print(f"no successful trial for: {', '.join(failed)} (reasons in {target})")
        return 1
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Evaluate on the holdout and write models and reports."""
    from resource_prediction.training.evaluation import Trainer

    paths, df = _load(args)
    trainer = Trainer(
        df, paths=paths, storage=args.storage, penalty=args.penalty, seed=args.seed,
        test_fraction=args.test_fraction,
    )
    result = trainer.run(
        families=args.model_family, task_type=args.task_type,
        evaluate_all_archs=args.evaluate_all_archs,
    )
    cols = ["family", "task_type", "business_score", "ci_low", "ci_high", "under_pct",
            "total_over_pct", "param_source"]
    print(result.holdout[cols].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(f"champions: {result.champions}")
    print(f"wrote {len(result.files)} files under {paths.root}")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="raw telemetry file (default: the generated default data)")
    add_format_flags(p)
    p.add_argument("--artifacts-dir", default=str(DEFAULT_ARTIFACTS_DIR))
    p.add_argument("--task-type", choices=SEARCH_TASK_TYPES, help="only this task type (default both)")
    p.add_argument("--model-family", action="append", metavar="NAME",
                   help="a registered family (repeatable; default every family of the task type)")
    p.add_argument("--storage", help="Optuna storage URL: sqlite:///..., postgresql+psycopg://..., "
                   "journal:///path.log (default <artifacts>/studies/optuna.db)")
    p.add_argument("--penalty", type=float, default=DEFAULT_PENALTY)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-fraction", type=float, default=0.10, help="latest share held out")


def add_search(sub: argparse._SubParsersAction) -> None:
    """Register ``search``."""
    p = sub.add_parser("search", help="Optuna search of the model families (resumable, shareable)")
    _common(p)
    p.add_argument("--n-trials", type=int, default=20, help="more trials per family in this run")
    p.add_argument("--timeout", type=float, help="seconds per family in this run")
    p.add_argument("--n-jobs", type=int, default=1, help="parallel trials (worker processes sharing the study)")
    p.add_argument("--folds", type=int, default=DEFAULT_FOLDS, help="expanding-window CV folds")
    p.add_argument("--no-progress-bar", action="store_true")
    p.set_defaults(func=cmd_search)


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    """Register ``evaluate``."""
    p = sub.add_parser("evaluate", help="holdout evaluation, champions, model export and reports")
    _common(p)
    p.add_argument("--evaluate-all-archs", action="store_true",
                   help="every family of the task type, plus comparison charts (HTML, PNG)")
    p.set_defaults(func=cmd_evaluate)
