"""Prediction speed of :class:`~resource_prediction.deployable.DeployableModel` per model family.

For each family: train on generated jobs, then

* single job: ``predict`` of one raw row without its peak (preprocessing included), median and
  95th percentile over many calls; the model alone on the already preprocessed row;
* batch: ``predict`` of a large raw frame without peaks (jobs per second), preprocessing included
  and the model alone.

Targets: single-job median <= 2 ms and batch >= 200,000 jobs/s for the LightGBM and XGBoost
families. Writes JSON to ``--out`` (default ``artifacts/bench/models.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from resource_prediction.data import time_split
from resource_prediction.deployable import DeployableModel
from resource_prediction.synthetic import generate_telemetry

#: Families with the throughput targets.
TARGET_FAMILIES = (
    "lightgbm_regression",
    "xgboost_regression",
    "lightgbm_classification",
    "xgboost_classification",
)
SINGLE_MS_MAX = 2.0
BATCH_JOBS_PER_S_MIN = 200_000


def _timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def _single_ms(fn, rows: list) -> dict[str, float]:
    for row in rows[:5]:  # warm-up
        fn(row)
    times = []
    for row in rows:
        start = time.perf_counter()
        fn(row)
        times.append(time.perf_counter() - start)
    ms = np.asarray(times) * 1e3
    return {
        "median_ms": float(np.median(ms)),
        "p95_ms": float(np.percentile(ms, 95)),
        "min_ms": float(ms.min()),
        "calls": len(ms),
    }


def _batch(fn, data, n_jobs: int, repeats: int) -> dict[str, float]:
    best = min(_timed(fn, data)[1] for _ in range(repeats))
    return {"jobs": n_jobs, "best_s": best, "jobs_per_s": n_jobs / best}


def bench_family(name: str, train: pd.DataFrame, new_jobs: pd.DataFrame, batch: pd.DataFrame,
                 single_calls: int, repeats: int) -> dict:
    model, fit_s = _timed(DeployableModel.train, name, train)
    rows = [new_jobs.iloc[[i]] for i in range(min(single_calls, len(new_jobs)))]
    features = [model.preprocessor.transform(r) for r in rows]
    X_batch = model.preprocessor.transform(batch)
    alloc = model.predict(batch)
    return {
        "fit_s": fit_s,
        "single_job_end_to_end": _single_ms(model.predict, rows),
        "single_job_model_only": _single_ms(model.model.predict, features),
        "batch_end_to_end": _batch(model.predict, batch, len(batch), repeats),
        "batch_model_only": _batch(model.model.predict, X_batch, len(batch), repeats),
        "batch_allocations_finite_positive": bool(np.all(np.isfinite(alloc) & (alloc > 0))),
        "pickled_mb": len(pickle.dumps(model)) / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="artifacts/bench/models.json")
    parser.add_argument("--train-jobs", type=int, default=20_000)
    parser.add_argument("--batch-jobs", type=int, default=200_000)
    parser.add_argument("--single-calls", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3, help="batch timings (best is kept)")
    parser.add_argument("--families", nargs="*", default=[*TARGET_FAMILIES, "qe_regression", "cost_aware_regression"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    load_start = os.getloadavg()[0]  # the machine is shared: record how busy it was
    train, new = time_split(generate_telemetry(args.train_jobs, seed=args.seed), 0.10)
    new_jobs = new.drop(columns=["max_rss", "max_rss_gb"])
    batch = generate_telemetry(args.batch_jobs, seed=args.seed + 1).drop(columns=["max_rss", "max_rss_gb"])

    families = {}
    for name in args.families:
        print(f"-- {name}", flush=True)
        families[name] = bench_family(name, train, new_jobs, batch, args.single_calls, args.repeats)

    def meets(name: str) -> bool:
        r = families[name]
        return (r["single_job_end_to_end"]["median_ms"] <= SINGLE_MS_MAX
                and r["batch_end_to_end"]["jobs_per_s"] >= BATCH_JOBS_PER_S_MIN)

    results = {
        "train_jobs": len(train),
        "batch_jobs": len(batch),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "numpy": np.__version__, "pandas": pd.__version__},
        "load_average_1min": {"start": load_start, "end": os.getloadavg()[0]},
        "families": families,
        "targets": {"single_job_median_ms_max": SINGLE_MS_MAX,
                    "batch_jobs_per_s_min": BATCH_JOBS_PER_S_MIN,
                    "families": [f for f in TARGET_FAMILIES if f in families]},
        "meets_targets": {f: meets(f) for f in TARGET_FAMILIES if f in families},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
