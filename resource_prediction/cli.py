"""The ``resource-prediction`` command line (also ``python -m resource_prediction``).

Subcommands are thin wrappers over the library; each is one function registered in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from resource_prediction.data import (
    TelemetryError,
    add_format_flags,
    ensure_default_data,
    format_options,
    load_telemetry,
    save_telemetry,
)
from resource_prediction.paths import DEFAULT_ARTIFACTS_DIR, ArtifactPaths
from resource_prediction.summary import format_summary, telemetry_summary
from resource_prediction.synthetic import DEFAULT_N_JOBS, SCENARIOS, generate_telemetry

log = logging.getLogger("resource_prediction")


def cmd_generate(args: argparse.Namespace) -> int:
    df = generate_telemetry(args.jobs, seed=args.seed, with_truth=not args.no_truth, scenario=args.scenario)
    path = save_telemetry(df, args.out)
    print(f"wrote {len(df):,} jobs ({args.scenario}) to {path}")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    paths = ArtifactPaths(Path(args.artifacts_dir))
    data = Path(args.data) if args.data else ensure_default_data(paths, seed=args.seed)
    summary = telemetry_summary(load_telemetry(data, **format_options(args)), penalty=args.penalty)
    print(f"data: {data}")
    print(format_summary(summary))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=2, default=str))
    return 0


def _add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate synthetic telemetry (CSV or Parquet by extension)")
    p.add_argument("--jobs", type=int, help="number of jobs (default: the scenario's own size)")
    p.add_argument("--scenario", choices=list(SCENARIOS), default="default",
                   help="generator scenario (see resource_prediction.synthetic.SCENARIOS; default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output path: .csv (';'-separated) or .parquet")
    p.add_argument("--no-truth", action="store_true", help="leave out the truth_* columns")
    p.set_defaults(func=cmd_generate)


def _add_summary(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("summary", help="summarise telemetry: span, configured request, oracle")
    p.add_argument("--data", help="raw telemetry file (default: the generated default data)")
    add_format_flags(p)
    p.add_argument("--artifacts-dir", default=str(DEFAULT_ARTIFACTS_DIR))
    p.add_argument("--penalty", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the summary as JSON here")
    p.set_defaults(func=cmd_summary)


def cmd_predict(args: argparse.Namespace) -> int:
    from resource_prediction.data import read_rows
    from resource_prediction.deployable import DeployableModel
    from resource_prediction.serving import predict_allocations

    model = DeployableModel.load(args.model)
    raw = read_rows(args.data, model.schema, fields=args.sacct_fields, delimiter=args.delimiter)
    table = predict_allocations(model, raw, explain=args.explain, progress=len(raw) > args.chunk_size,
                                chunk_size=args.chunk_size)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    print(f"wrote {len(table):,} allocations ({model.schema.name} jobs) to {out}")
    if "under_allocated" in table.columns:
        known = table["under_allocated"].notna()
        print(f"replay: {int(table.loc[known, 'under_allocated'].sum()):,} of {int(known.sum()):,} jobs "
              f"under-allocated, {table['waste_gb'].sum():,.1f} GB over-allocated in total")
    return 0


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="allocations (GB) for the jobs of a file, from a saved model")
    p.add_argument("--model", required=True, help="a saved model (.pkl)")
    p.add_argument("--data", required=True, help="jobs in the model's own format (build, Nextflow, sacct)")
    p.add_argument("--out", required=True, help="output CSV: one row per job")
    p.add_argument("--explain", action="store_true",
                   help="add the predicted median, the quantile, the probability of failure, the expected waste")
    p.add_argument("--chunk-size", type=int, default=50_000, help="jobs per chunk (default: %(default)s)")
    p.add_argument("--sacct-fields", metavar="F1,F2,...", help="Slurm: field order of a headerless export")
    p.add_argument("--delimiter", help="Slurm: the field delimiter (default: detected)")
    p.set_defaults(func=cmd_predict)


def cmd_export(args: argparse.Namespace) -> int:
    from resource_prediction.data import read_rows
    from resource_prediction.deployable import DeployableModel
    from resource_prediction.export import export_allocations

    model = DeployableModel.load(args.model)
    data = None
    if args.data:
        data = read_rows(args.data, model.schema, fields=args.sacct_fields, delimiter=args.delimiter)
    text = export_allocations(model, args.to, data=data, max_memory_gb=args.max_memory_gb)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        print(f"wrote the {args.to} export to {args.out}")
    else:
        print(text, end="")
    return 0


def _add_export(sub: argparse._SubParsersAction) -> None:
    from resource_prediction.export import EXPORTS

    p = sub.add_parser("export", help="a model's allocations as a Nextflow config, sbatch --mem table or "
                       "Kubernetes requests")
    p.add_argument("--model", required=True, help="a saved model (.pkl)")
    p.add_argument("--to", required=True, choices=list(EXPORTS))
    p.add_argument("--out", help="output file (default: standard output)")
    p.add_argument("--data", help="jobs whose groups to size (default: the latest jobs stored with the model)")
    p.add_argument("--max-memory-gb", type=float, help="cap (Nextflow resourceLimits)")
    p.add_argument("--sacct-fields", metavar="F1,F2,...", help="Slurm: field order of a headerless export")
    p.add_argument("--delimiter", help="Slurm: the field delimiter (default: detected)")
    p.set_defaults(func=cmd_export)


def _add_training(sub: argparse._SubParsersAction) -> None:
    from resource_prediction.training.commands import add_evaluate, add_search

    add_search(sub)
    add_evaluate(sub)


#: Subcommand builders; later modules add theirs here.
COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_generate, _add_summary, _add_training, _add_predict, _add_export,
]


def add_pipeline_flags(parser: argparse.ArgumentParser) -> None:
    """The seed project's flags, used when no subcommand is given: run the notebooks (papermill)."""
    from resource_prediction.pipeline import DEFAULT_N_TRIALS
    from resource_prediction.registry import SEARCH_TASK_TYPES

    g = parser.add_argument_group(
        "pipeline (no subcommand)",
        "run the notebooks 01-04 with papermill; executed copies go to book/results/ and "
        "<artifacts>/notebooks/",
    )
    g.add_argument("--run-search", action="store_true",
                   help="run the Optuna search and the final evaluation (without it: no new trials; "
                        "evaluation with the stored best or default parameters)")
    g.add_argument("--skip-preprocessing", action="store_true",
                   help="reuse the processed data of an earlier run")
    g.add_argument("--preprocess-only", action="store_true", help="run preprocessing and stop")
    g.add_argument("--evaluate-all-archs", action="store_true",
                   help="evaluate the best model of every family and chart them")
    g.add_argument("--task-type", "--model-type", dest="task_type", choices=SEARCH_TASK_TYPES,
                   default="regression", help="regression or classification families (default: %(default)s)")
    g.add_argument("--model-family", metavar="NAME", help="search and evaluate this family only")
    g.add_argument("--data", help="raw telemetry (default: generated data under the artifacts)")
    g.add_argument("--format", dest="data_format", choices=("auto", "build", "nextflow", "slurm"),
                   default="auto", help="format of --data (default: detected from the header)")
    g.add_argument("--artifacts-dir", default=str(DEFAULT_ARTIFACTS_DIR), help="default: %(default)s")
    g.add_argument("--n-trials", type=int, default=DEFAULT_N_TRIALS,
                   help="Optuna trials per family (default: %(default)s)")
    g.add_argument("--timeout", type=float, help="search time limit per family, seconds")
    g.add_argument("--n-jobs", type=int, default=1,
                   help="parallel trials of the search (worker processes; default: %(default)s)")
    g.add_argument("--storage", help="Optuna storage URL (default: SQLite under the artifacts)")
    g.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    g.add_argument("--jobs", type=int, default=DEFAULT_N_JOBS,
                   help="jobs of the generated data when --data is not given (default: %(default)s)")
    g.add_argument("--book-results", metavar="DIR",
                   help="where the book takes the executed notebooks from (default: book/results)")
    g.add_argument("--threads", type=int, default=1,
                   help="OpenMP/BLAS threads of the notebook kernels (default: %(default)s)")


def cmd_pipeline(args: argparse.Namespace) -> int:
    """Run the notebooks (no subcommand): exit 1 naming the notebook and cell when one fails."""
    from resource_prediction.pipeline import (
        BOOK_RESULTS_DIR,
        PipelineConfig,
        PipelineError,
        run_pipeline,
    )

    try:
        config = PipelineConfig(
            data=Path(args.data) if args.data else None,
            data_format=args.data_format,
            artifacts_dir=Path(args.artifacts_dir),
            task_type=args.task_type,
            model_family=args.model_family,
            run_search=args.run_search,
            skip_preprocessing=args.skip_preprocessing,
            preprocess_only=args.preprocess_only,
            evaluate_all_archs=args.evaluate_all_archs,
            n_trials=args.n_trials,
            timeout=args.timeout,
            n_jobs=args.n_jobs,
            storage=args.storage,
            seed=args.seed,
            jobs=args.jobs,
            book_results=Path(args.book_results) if args.book_results else BOOK_RESULTS_DIR,
            threads=args.threads,
        )
        runs = run_pipeline(config)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    paths = config.paths
    print(f"executed notebooks: {paths.notebooks}")
    if runs and runs[-1].book_copy is not None:
        print(f"book pages (executed notebooks): {runs[-1].book_copy.parent}")
    print(f"models: {paths.models}")
    print(f"reports: {paths.reports}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resource-prediction",
        description="Size the memory of build and batch jobs from their telemetry.",
        allow_abbrev=False,  # subcommands' --model must not read as an abbreviation of --model-family
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_pipeline_flags(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from resource_prediction.deployable import ArtifactError

    if not getattr(args, "func", None):
        return cmd_pipeline(args)
    try:
        return args.func(args)
    except (TelemetryError, ArtifactError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
