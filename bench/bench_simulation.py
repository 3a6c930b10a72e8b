"""Step time of the simulation: one job predicted, observed, counted (and drawn, for the app).

Trains small models on generated data, saves them in a temporary artifacts directory with the
training's layout, and measures the median time of one step (batch size 1, no delay: "as fast as
possible") for the plain :class:`ReplaySimulation` and for the widget layer (:class:`SimulationApp`:
replay step + counters + chart + model panel). The target is at most 50 ms per step.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from resource_prediction.data import save_telemetry, time_split
from resource_prediction.deployable import DeployableModel
from resource_prediction.synthetic import generate_telemetry

#: family -> file under trained_models/ (the app's layout)
FAMILIES = {
    "lightgbm_regression": "lightgbm_regression.pkl",
    "xgboost_classification": "app/classification/xgboost_classification.pkl",
    "qe_regression": "app/qe/qe_balanced.pkl",
}


def _median_ms(fn, n: int) -> tuple[float, float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    ms = 1000.0 * np.asarray(times)
    return float(np.median(ms)), float(np.percentile(ms, 90))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="artifacts/bench/simulation.json")
    parser.add_argument("--jobs", type=int, default=10_000, help="generated jobs (training + holdout)")
    parser.add_argument("--steps", type=int, default=200, help="steps measured per model")
    args = parser.parse_args()

    from resource_prediction.simulation import ReplaySimulation, SimulationApp, load_simulation_jobs

    df = generate_telemetry(args.jobs, seed=0)
    train, _ = time_split(df)
    results: dict = {
        "jobs": args.jobs,
        "steps": args.steps,
        "batch_size": 1,
        "delay_s": 0.0,
        "target_ms": 50.0,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1min_at_start": os.getloadavg()[0],
        },
        "models": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        save_telemetry(df, root / "data" / "default_telemetry.csv")
        for family, rel in FAMILIES.items():
            start = time.perf_counter()
            model = DeployableModel.train(family, train, seed=0)
            path = root / "trained_models" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            model.save(path)
            results["models"][family] = {"train_s": time.perf_counter() - start, "file": rel}
        holdout = load_simulation_jobs(None, root)
        for family, rel in FAMILIES.items():
            entry = results["models"][family]
            sim = ReplaySimulation(holdout)
            sim.set_model(family, DeployableModel.load(root / "trained_models" / rel))
            entry["replay_step_ms_median"], entry["replay_step_ms_p90"] = _median_ms(sim.step, args.steps)
            sim.reset()
            entry["replay_step_explain_ms_median"], _ = _median_ms(
                lambda sim=sim: sim.step(explain=True), args.steps
            )
            app = SimulationApp(root, window=300)
            app.select_model(rel)
            app.step()  # first drawing
            entry["app_step_ms_median"], entry["app_step_ms_p90"] = _median_ms(app.step, args.steps)
            entry["app_error"] = app.error
            entry["meets_target"] = entry["app_step_ms_median"] <= results["target_ms"]
    results["machine"]["load_average_1min_at_end"] = os.getloadavg()[0]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
