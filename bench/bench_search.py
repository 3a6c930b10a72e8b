"""Search throughput: Optuna trials per minute of every model family on the default data.

Preprocessing of the CV folds is timed once (it is cached per preprocessor setting and shared by
the families); each family then runs ``--trials`` trials in an in-memory study.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import optuna

from resource_prediction.config import families
from resource_prediction.data import load_telemetry, time_split
from resource_prediction.synthetic import DEFAULT_N_JOBS, generate_telemetry
from resource_prediction.training.search import HyperparameterSearcher


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="artifacts/bench/search.json")
    parser.add_argument("--data", help="raw telemetry (default: generated, the default size)")
    parser.add_argument("--jobs", type=int, default=DEFAULT_N_JOBS)
    parser.add_argument("--trials", type=int, default=3, help="trials per family")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--family", action="append", help="only these families")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    df = load_telemetry(args.data) if args.data else generate_telemetry(args.jobs, seed=0)
    train, _ = time_split(df)
    names = args.family or [*families("regression"), *families("classification")]
    searcher = HyperparameterSearcher(
        train, families=names, n_trials=args.trials, storage="memory", n_folds=args.folds,
        show_progress_bar=False,
    )
    start = time.perf_counter()
    for encoding in ("category", "onehot"):
        for quant in (True, False):
            searcher.cache.folds(encoding, {"use_quant_features": quant})
    preprocess_s = time.perf_counter() - start

    per_family = {}
    for name in searcher.families:
        result = searcher.search_family(name)
        minutes = result.seconds / 60.0
        per_family[name] = {
            "trials": result.n_trials,
            "complete": result.n_complete,
            "pruned": result.n_pruned,
            "failed": result.n_failed,
            "seconds": result.seconds,
            "seconds_per_trial": result.seconds / max(result.n_trials, 1),
            "trials_per_minute": result.n_trials / minutes if minutes > 0 else None,
            "best_cv_score": result.best_value,
        }
        print(f"{name:26s} {per_family[name]['seconds_per_trial']:7.1f} s/trial  "
              f"best {result.best_value}", flush=True)
    total_per_trial = sum(v["seconds_per_trial"] for v in per_family.values())
    results = {
        "jobs": len(df),
        "train_jobs": len(train),
        "folds": args.folds,
        "trials_per_family": args.trials,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average": os.getloadavg()},
        "preprocess_folds_s": preprocess_s,
        "families": per_family,
        "seconds_per_trial_all_families": total_per_trial,
        "estimated_20_trials_all_families_s": 20 * total_per_trial + preprocess_s,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
