"""Throughput of the synthetic generator, the loader and the oracle at one million jobs."""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from resource_prediction.data import load_telemetry, save_telemetry
from resource_prediction.synthetic import generate_telemetry, oracle_allocation


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="artifacts/bench/data.json")
    parser.add_argument("--jobs", type=int, default=1_000_000)
    args = parser.parse_args()
    n = args.jobs
    df, t_gen = _timed(generate_telemetry, n, seed=0, with_truth=True)
    _, t_oracle = _timed(oracle_allocation, df)
    results = {
        "jobs": n,
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "generate_s": t_gen,
        "generate_jobs_per_s": n / t_gen,
        "oracle_s": t_oracle,
        "oracle_jobs_per_s": n / t_oracle,
    }
    with tempfile.TemporaryDirectory() as tmp:
        for ext in ("csv", "parquet"):
            path = Path(tmp) / f"telemetry.{ext}"
            _, t_write = _timed(save_telemetry, df, path)
            loaded, t_load = _timed(load_telemetry, path)
            assert len(loaded) == n, "the loader lost rows"
            results[f"{ext}_write_s"] = t_write
            results[f"{ext}_load_s"] = t_load
            results[f"{ext}_load_jobs_per_s"] = n / t_load
            results[f"{ext}_size_mb"] = path.stat().st_size / 1e6
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
