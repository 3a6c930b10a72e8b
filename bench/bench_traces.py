"""Holdout scores on real Nextflow traces: every family, default and searched, against the baselines.

For each ``trace_*.csv`` under ``--traces`` (default ``../shared/data/nextflow``, next to the
repository; the benchmark is skipped, with a note in the JSON, where it is absent) it runs what a
user runs, in a fresh artifacts directory: ``resource-prediction evaluate --evaluate-all-archs``
with default hyper-parameters, then ``search --n-trials N`` and ``evaluate`` again (which keeps a
study's parameters only where they beat the defaults on the validation window with confidence:
``param_source``). The JSON holds both holdout tables (latest 10 % of the tasks, never seen in
training or search), both champions and the times.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import optuna
import pandas as pd
from bench_search import timed_cli  # this folder is the scripts' path

from resource_prediction.paths import ArtifactPaths

DEFAULT_TRACES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nextflow"
COLUMNS = ["family", "task_type", "business_score", "ci_low", "ci_high", "under_pct", "total_over_pct",
           "param_source"]


def _table(paths: ArtifactPaths) -> list[dict]:
    table = pd.read_csv(paths.reports / "holdout_results.csv")[COLUMNS]
    return json.loads(table.round(2).to_json(orient="records"))


def _champion(paths: ArtifactPaths) -> str | None:
    return json.loads((paths.reports / "champions.json").read_text())["champions"].get("overall")


def bench_trace(trace: Path, trials: int, n_jobs: int, workdir: Path) -> dict:
    """Default and searched holdout tables of one trace."""
    paths = ArtifactPaths(workdir / trace.stem).ensure()
    common = ["--data", str(trace), "--artifacts-dir", str(paths.root)]
    evaluate = ["evaluate", *common, "--evaluate-all-archs"]
    out: dict = {"trace": trace.name, "trials_per_family": trials}
    out["default_evaluate_s"] = timed_cli(evaluate)
    out["defaults"], out["default_champion"] = _table(paths), _champion(paths)
    out["search_s"] = timed_cli(
        ["search", *common, "--n-trials", str(trials), "--n-jobs", str(n_jobs), "--no-progress-bar"]
    )
    out["searched_evaluate_s"] = timed_cli(evaluate)
    out["searched"], out["searched_champion"] = _table(paths), _champion(paths)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="artifacts/bench/traces.json")
    parser.add_argument("--traces", type=Path, default=DEFAULT_TRACES, help="folder of trace_*.csv")
    parser.add_argument("--trials", type=int, default=20, help="trials per family")
    parser.add_argument("--n-jobs", type=int, default=2, help="parallel trials")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    traces = sorted(args.traces.glob("trace_*.csv")) if args.traces.is_dir() else []
    results: dict = {"traces_dir": str(args.traces)}
    if not traces:
        results["skipped"] = f"no trace_*.csv under {args.traces}"
    with tempfile.TemporaryDirectory(prefix="bench-traces-") as tmp:
        results["traces"] = [bench_trace(t, args.trials, args.n_jobs, Path(tmp)) for t in traces]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
