"""Search and evaluation on the default data at the ``make run`` budget: speed and the champion.

Runs what a user runs, in a fresh artifacts directory and timed:
``resource-prediction search --n-trials 10 --timeout 120 --n-jobs 2`` (every searched family; the
budget of ``make run``) and then ``resource-prediction evaluate --evaluate-all-archs``. Per family it
records, from the study's trial timestamps, the wall time, trials per minute and how many trials were
complete, pruned or failed; from the evaluation, the champion (chosen on the validation window), its
holdout score against the oracle's, and the cost-aware model against the quantile ensemble of the
same search. Writes JSON to ``--out`` (default ``artifacts/bench/search.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

import optuna
from optuna.trial import TrialState

from resource_prediction.cli import main as cli
from resource_prediction.paths import ArtifactPaths
from resource_prediction.synthetic import DEFAULT_N_JOBS, generate_telemetry
from resource_prediction.training.storage import STUDY_PREFIX

TARGET_S = 600.0


def family_stats(storage: str) -> dict[str, dict]:
    """Per study: trial counts by state, wall time from first start to last end, trials/minute."""
    out = {}
    for summary in optuna.get_all_study_summaries(storage):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        trials = study.get_trials(deepcopy=False)
        starts = [t.datetime_start for t in trials if t.datetime_start]
        ends = [t.datetime_complete for t in trials if t.datetime_complete]
        seconds = (max(ends) - min(starts)).total_seconds() if starts and ends else None
        states = [t.state for t in trials]
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        out[summary.study_name.removeprefix(f"{STUDY_PREFIX}/")] = {
            "trials": len(trials),
            "complete": states.count(TrialState.COMPLETE),
            "pruned": states.count(TrialState.PRUNED),
            "failed": states.count(TrialState.FAIL),
            "seconds": seconds,
            "trials_per_minute": 60.0 * len(trials) / seconds if seconds else None,
            "best_cv_score": min(t.value for t in complete) if complete else None,
        }
    return out


def quality(holdout: list[dict], champions: dict) -> dict:
    """The champion against the oracle, and the cost-aware model against the quantile ensemble."""
    score = {r["family"]: r["business_score"] for r in holdout}
    champion = champions.get("overall")
    out = {"champion": champion, "champion_score": score.get(champion), "oracle_score": score.get("oracle")}
    if champion and "oracle" in score:
        out["champion_ratio_to_oracle"] = score[champion] / score["oracle"]
    if "cost_aware_regression" in score and "qe_regression" in score:
        out["cost_aware_below_qe"] = 1 - score["cost_aware_regression"] / score["qe_regression"]
    return out


def timed_cli(argv: list[str]) -> float:
    """Seconds ``resource-prediction <argv>`` took (its printed tables shown only if it fails)."""
    buffer = StringIO()
    start = time.perf_counter()
    with redirect_stdout(buffer):
        rc = cli(argv)
    if rc:
        raise SystemExit(f"resource-prediction {' '.join(argv)} exited {rc}:\n{buffer.getvalue()}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="artifacts/bench/search.json")
    parser.add_argument("--data", help="raw telemetry (default: generated, --jobs jobs, seed 0)")
    parser.add_argument("--jobs", type=int, default=DEFAULT_N_JOBS)
    parser.add_argument("--trials", type=int, default=10, help="trials per family")
    parser.add_argument("--timeout", type=int, default=120, help="seconds per family")
    parser.add_argument("--n-jobs", type=int, default=2, help="parallel trials")
    parser.add_argument("--artifacts-dir", help="keep the run here (default: a temporary directory)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        artifacts = Path(args.artifacts_dir or tmp)
        paths = ArtifactPaths(artifacts).ensure()
        data = Path(args.data) if args.data else paths.data / "bench_telemetry.parquet"
        if not args.data:
            generate_telemetry(args.jobs, seed=0, with_truth=True).to_parquet(data)
        common = ["--artifacts-dir", str(artifacts), "--data", str(data)]
        load_start = os.getloadavg()
        search_s = timed_cli(["search", *common, "--n-trials", str(args.trials), "--timeout",
                               str(args.timeout), "--n-jobs", str(args.n_jobs), "--no-progress-bar"])
        evaluate_s = timed_cli(["evaluate", *common, "--evaluate-all-archs"])
        families = family_stats(paths.default_storage)
        holdout = json.loads((paths.reports / "holdout_results.json").read_text())
        champions = json.loads((paths.reports / "champions.json").read_text())["champions"]

    total = search_s + evaluate_s
    results = {
        "data": str(args.data) if args.data else f"generated: {args.jobs} jobs, seed 0",
        "trials_per_family": args.trials,
        "parallel_trials": args.n_jobs,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_at_start": load_start, "load_average_at_end": os.getloadavg()},
        "search_s": search_s,
        "evaluate_s": evaluate_s,
        "total_s": total,
        "target_s": TARGET_S,
        "meets_target": total <= TARGET_S,
        "families": families,
        "quality": quality(holdout, champions),
        "holdout": holdout,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    for name, stats in families.items():
        print(f"{name:26s} {stats['trials_per_minute'] or 0:6.1f} trials/min  "
              f"({stats['complete']} complete, {stats['pruned']} pruned, {stats['failed']} failed)")
    print(f"search {search_s:.0f} s + evaluation {evaluate_s:.0f} s = {total:.0f} s "
          f"(target {TARGET_S:.0f} s)")
    print(json.dumps(results["quality"]))


if __name__ == "__main__":
    main()
