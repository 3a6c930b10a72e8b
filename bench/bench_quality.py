"""Allocation quality on data the models were not tuned to: every scenario and every real trace.

For each scenario of the synthetic generator (:data:`resource_prediction.synthetic.SCENARIOS`,
seed ``--seed``) and each real Nextflow trace under ``--traces`` (default ``../shared/data/nextflow``;
skipped where absent), it evaluates every family with its default hyper-parameters as
``resource-prediction evaluate --evaluate-all-archs`` does (:class:`~resource_prediction.training.
evaluation.Trainer`): the champion is chosen on the validation window inside the training period,
and every family is scored on the latest 10 % (holdout, causal replay). Per data set the JSON
holds the holdout table (with the ratio of each score to the oracle's where the data has truth),
the champion, whether it beats the configured request, ``max_seen``, ``vpa`` and
``group_percentile``, and the cost-aware safe variant against the configured request. Generated
data also gets each family's expected cost as a multiple of the oracle's
(:func:`~resource_prediction.synthetic.expected_cost_ratio`): the realised score of a scenario's
few hundred scored jobs is noisy, the expected cost is not.

**Cold start** (``traces_new_types``): each trace again, ``--new-type-draws`` times, with every
training task of a third of the task types that the latest 10 % runs removed (drawn with
``--seed``): those types are new when the latest 10 % is replayed, as when a workflow gains
processes. The holdout is the same tasks as the trace's own.

**More seeds** (``scenario_seeds``): the scenarios named in ``--more-seeds-scenarios`` (default
``little_data``, whose 200 scored jobs make one seed's score a matter of luck) again with seeds
``seed + 1`` to ``seed + --more-seeds``, so that the page can state their mean and spread.

**Requests missing** (``traces_no_request``): each trace again with the configured request
(``memreq``) of a third of the task types that the latest 10 % runs removed, in training too (drawn
with ``--seed``, apart from the cold-start draws), as in a workflow whose processes set no memory
directive: the request is then neither a feature nor a guard for them.

**Longer holdouts** (``traces_longer_holdout``): each trace again with its latest 20, 30 and 40 %
scored (``--holdouts``), the models trained on the rest: a model deployed for longer before it is
refitted, and task types that the shorter training period never ran.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from resource_prediction.data import load_telemetry, time_split
from resource_prediction.paths import ArtifactPaths
from resource_prediction.schema import frame_schema
from resource_prediction.synthetic import (
    SCENARIOS,
    expected_cost_ratio,
    generate_telemetry,
    has_truth,
)
from resource_prediction.training.evaluation import ORACLE, Trainer

DEFAULT_TRACES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nextflow"
COLUMNS = ["family", "task_type", "val_business_score", "business_score", "under_pct", "total_over_pct"]
BASELINES_TO_BEAT = ("configured_request", "max_seen", "vpa", "group_percentile")


def expected_ratios(result, truth: pd.DataFrame, penalty: float) -> dict[str, float]:
    """Per family, the expected cost of its holdout allocations as a multiple of the oracle's
    (``truth``: the holdout rows with the generator's truth columns, in the same order)."""
    return {family: expected_cost_ratio(rows["allocated_gb"].to_numpy(), truth, penalty)
            for family, rows in result.predictions.groupby("family", sort=False)}


def summarise(name: str, result, seconds: float, expected: dict[str, float] | None = None) -> dict:
    """The JSON record of one data set's evaluation (``expected``: :func:`expected_ratios`)."""
    table = result.holdout.set_index("family")
    rows = result.holdout[COLUMNS].copy()
    oracle = table.loc[ORACLE, "business_score"] if ORACLE in table.index else None
    if oracle is not None:
        rows["ratio_to_oracle"] = rows["business_score"] / oracle
    if expected:
        rows["expected_ratio_to_oracle"] = rows["family"].map(expected)
    champion = result.champions.get("overall")
    score = float(table.loc[champion, "business_score"]) if champion else None
    out = {
        "data": name,
        "seconds": round(seconds, 1),
        "champion": champion,
        "champion_score": score,
        "champion_under_pct": float(table.loc[champion, "under_pct"]) if champion else None,
        "oracle_score": None if oracle is None else float(oracle),
        "champion_ratio_to_oracle": None if oracle is None or score is None else score / oracle,
        "champion_expected_ratio_to_oracle": (expected or {}).get(champion),
        "champion_beats": {
            b: bool(score < table.loc[b, "business_score"]) for b in BASELINES_TO_BEAT
            if b in table.index and score is not None
        },
        "table": json.loads(rows.round(3).to_json(orient="records")),
    }
    frontier = result.frontier
    if frontier is not None and (frontier["variant"] == "cost_aware_safe").any():
        safe = frontier[frontier["variant"] == "cost_aware_safe"].iloc[0]
        request = table.loc["configured_request"]
        out["safe_variant"] = {
            "penalty": float(safe["penalty"]),
            "holdout_under_pct": float(safe["holdout_under_pct"]),
            "holdout_total_over_pct": float(safe["holdout_total_over_pct"]),
            "request_under_pct": float(request["under_pct"]),
            "request_total_over_pct": float(request["total_over_pct"]),
            "over_reduction_vs_request": 1 - safe["holdout_total_over_pct"] / request["total_over_pct"],
        }
    return out


def holdout_types(df: pd.DataFrame, rng: np.random.Generator, share: float,
                  test_fraction: float) -> tuple[str, pd.DataFrame, pd.DataFrame, np.ndarray]:
    """The task-type column, the time split, and ``share`` of the holdout's task types drawn."""
    train, test = time_split(df, test_fraction)
    column = frame_schema(df).fine[0]
    types = np.array(sorted(set(test[column].astype(str))))
    return column, train, test, rng.choice(types, size=max(1, int(len(types) * share)), replace=False)


def with_new_types(df: pd.DataFrame, rng: np.random.Generator, share: float = 1 / 3,
                   test_fraction: float = 0.10) -> tuple[pd.DataFrame, float, list[str]]:
    """``df`` without the training rows of ``share`` of the holdout's task types, the test
    fraction that keeps the same holdout, and the types removed."""
    column, train, test, new = holdout_types(df, rng, share, test_fraction)
    kept = pd.concat([train[~train[column].astype(str).isin(new)], test])
    return kept, len(test) / len(kept), sorted(new.tolist())


#: Columns that hold a job's configured request.
REQUEST_COLUMNS = ("memreq", "memreq_gb")


def without_requests(df: pd.DataFrame, rng: np.random.Generator, share: float = 1 / 3,
                     test_fraction: float = 0.10) -> tuple[pd.DataFrame, list[str]]:
    """``df`` with the configured request of ``share`` of the holdout's task types removed (in
    training too), and those types."""
    column, _, _, gone = holdout_types(df, rng, share, test_fraction)
    out = df.copy()
    rows = out[column].astype(str).isin(gone)
    for request in REQUEST_COLUMNS:
        if request in out.columns:
            out.loc[rows, request] = np.nan
    return out, sorted(gone.tolist())


def evaluate(name: str, df: pd.DataFrame, workdir: Path, test_fraction: float = 0.10) -> dict:
    start = time.perf_counter()
    trainer = Trainer(df, paths=ArtifactPaths(workdir / name), storage="memory", n_boot=200,
                      test_fraction=test_fraction)
    result = trainer.run(evaluate_all_archs=True, write=False)
    truth = trainer.holdout_raw
    expected = expected_ratios(result, truth, trainer.penalty) if has_truth(truth) else None
    record = summarise(name, result, time.perf_counter() - start, expected)
    record["selection"] = trainer.selection
    beats = ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in record["champion_beats"].items())
    ratio, expected_ratio = record["champion_ratio_to_oracle"], record["champion_expected_ratio_to_oracle"]
    print(f"{name:22s} champion {record['champion']:24s} {record['champion_score']:7.1f}"
          + (f" ({ratio:.3f} x oracle" if ratio else "")
          + (f", expected cost {expected_ratio:.3f} x" if expected_ratio else "")
          + (")" if ratio else "") + f"; beats {beats}", flush=True)
    return record


def commit() -> str | None:
    """The project's checked-out commit (short), None outside a git checkout."""
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent, check=False)
    return done.stdout.strip() or None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="artifacts/bench/quality.json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenarios", nargs="*", default=list(SCENARIOS))
    parser.add_argument("--traces", type=Path, default=DEFAULT_TRACES, help="folder of trace_*.csv")
    parser.add_argument("--new-type-draws", type=int, default=2,
                        help="cold-start draws per trace (0: none)")
    parser.add_argument("--more-seeds", type=int, default=7,
                        help="further seeds of --more-seeds-scenarios (0: none)")
    parser.add_argument("--more-seeds-scenarios", nargs="*", default=["little_data"],
                        help="scenarios scored on further seeds")
    parser.add_argument("--holdouts", type=float, nargs="*", default=[0.2, 0.3, 0.4],
                        help="longer holdout shares per trace (none: skip)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results: dict = {"seed": args.seed, "commit": commit(), "date": datetime.date.today().isoformat(),
                     "scenarios": [], "scenario_seeds": [], "traces": [], "traces_new_types": [],
                     "traces_no_request": [], "traces_longer_holdout": []}
    rng = np.random.default_rng(args.seed)
    request_rng = np.random.default_rng([args.seed, 1])  # its own, so the other draws stay as they were
    traces = sorted(args.traces.glob("trace_*.csv")) if args.traces.is_dir() else []
    if not traces:
        results["traces_skipped"] = f"no trace_*.csv under {args.traces}"
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        for scenario in args.scenarios:
            df = generate_telemetry(seed=args.seed, with_truth=True, scenario=scenario)
            results["scenarios"].append(evaluate(scenario, df, Path(tmp)))
        for scenario in args.more_seeds_scenarios:
            for seed in range(args.seed + 1, args.seed + 1 + args.more_seeds):
                df = generate_telemetry(seed=seed, with_truth=True, scenario=scenario)
                record = evaluate(f"{scenario}_seed_{seed}", df, Path(tmp))
                results["scenario_seeds"].append({**record, "scenario": scenario, "seed": seed})
        for trace in traces:
            df = load_telemetry(trace)
            results["traces"].append(evaluate(trace.stem, df, Path(tmp)))
            for draw in range(args.new_type_draws):
                cold, fraction, new = with_new_types(df, rng)
                record = evaluate(f"{trace.stem}_new_types_{draw}", cold, Path(tmp), fraction)
                results["traces_new_types"].append({**record, "new_types": new})
            bare, gone = without_requests(df, request_rng)
            record = evaluate(f"{trace.stem}_no_request", bare, Path(tmp))
            results["traces_no_request"].append({**record, "without_request": gone})
            for share in args.holdouts:
                record = evaluate(f"{trace.stem}_latest_{round(100 * share)}", df, Path(tmp), share)
                results["traces_longer_holdout"].append({**record, "test_fraction": share})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
