"""The pipeline: the numbered notebooks executed in order by papermill.

``resource-prediction`` without a subcommand (the seed project's command line) builds a
:class:`PipelineConfig` and calls :func:`run_pipeline`. Every notebook has one cell tagged
``parameters``; the pipeline injects the values the notebook declares there (see
:meth:`PipelineConfig.parameters`) and runs it with the ``python3`` kernel, which resolves to the
interpreter running the pipeline (the project's virtual environment). The executed copies go to
``<artifacts>/notebooks/`` and, when they succeed, to ``book/results/``, where the Jupyter Book takes
them from. A failing cell stops the run with :class:`PipelineError`, which names the notebook and
the cell and points to papermill's executed copy (it shows the error under the failing cell).

What runs:

* ``01_data_exploration`` and ``02_feature_engineering`` always (``preprocess_only`` stops after
  them; ``skip_preprocessing`` makes 02 load the processed data of an earlier run instead of computing
  it again);
* ``03_hyperparameter_search``: with ``run_search`` the Optuna search of each selected family
  (``n_trials`` trials, optional ``timeout``), resuming the studies kept in the storage; without it no
  trial runs and the notebook shows the studies the storage already holds;
* ``04_evaluation``: refits each selected family (``model_family``, else every family of
  ``task_type``) on the training period with the best parameters of its study (its default
  parameters when it has none) and scores it and the baselines on the holdout; with
  ``evaluate_all_archs`` every family of both task types, and the comparison charts as files;
* ``05_simulation``: replays the holdout through the exported models (a plotly animation in the book;
  the interactive app runs in JupyterLab or Voila).
"""

from __future__ import annotations

import logging
import os
import re
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from resource_prediction.metrics import DEFAULT_PENALTY
from resource_prediction.paths import DEFAULT_ARTIFACTS_DIR, ArtifactPaths
from resource_prediction.processed import has_processed
from resource_prediction.registry import SEARCH_TASK_TYPES, get_family
from resource_prediction.synthetic import DEFAULT_N_JOBS

log = logging.getLogger(__name__)

#: The repository (the package is installed editable from it): notebooks and book live here.
#:
#: :meta hide-value:
PROJECT_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
BOOK_RESULTS_DIR = PROJECT_ROOT / "book" / "results"
NOTEBOOKS: tuple[str, ...] = (
    "01_data_exploration",
    "02_feature_engineering",
    "03_hyperparameter_search",
    "04_evaluation",
    "05_simulation",
)
PREPROCESSING_NOTEBOOKS = NOTEBOOKS[:2]
#: Optuna trials per family when none is given (``make run`` also caps each family with a timeout).
DEFAULT_N_TRIALS = 6
KERNEL_NAME = "python3"


class PipelineError(RuntimeError):
    """A notebook failed: names the notebook, the cell and papermill's executed copy."""

    def __init__(self, notebook: str, cell: str, error: str, executed_copy: Path):
        self.notebook, self.cell, self.error, self.executed_copy = notebook, cell, error, executed_copy
        super().__init__(
            f"notebook {notebook} failed in {cell}: {error}\n"
            f"the executed notebook with the error: {executed_copy}"
        )


@dataclass(frozen=True)
class PipelineConfig:
    """One pipeline run: the data, where results go, what to search and evaluate.

    Parameters
    ----------
    data : path or None
        Raw telemetry; ``None`` generates ``jobs`` synthetic jobs (seed ``seed``) under the artifacts.
    data_format : {"auto", "build", "nextflow", "slurm"}
        Format of ``data`` (``load_telemetry``'s ``format``; notebooks take it as ``data_format``).
    artifacts_dir : path
        Artifacts root (layout: :class:`~resource_prediction.paths.ArtifactPaths`).
    task_type : {"regression", "classification"}
        Which families the search and the evaluation consider.
    model_family : str or None
        One family only (``None``: every family of ``task_type``).
    run_search, skip_preprocessing, preprocess_only, evaluate_all_archs : bool
        The seed project's flags (see the module docstring).
    n_trials, timeout : int, float or None
        Optuna budget per family (trials, seconds).
    n_jobs : int
        Parallel trials of the search (threads; 2 uses both cores of a 2-core machine).
    storage : str or None
        Optuna storage URL (``None``: the SQLite file of the artifacts).
    seed : int
        Seed of data generation, sampling and search.
    jobs : int
        Size of the generated data when ``data`` is ``None``.
    penalty : float
        The business score's penalty.
    test_fraction : float
        The holdout: the latest share of the jobs.
    notebook_dir, book_results : path
        Where the notebooks are read from and where the book takes the executed ones from
        (``book_results=None``: not copied for the book).
    progress_bar : bool
        Papermill's per-cell progress bar.
    threads : int or None
        OpenMP/BLAS threads of the notebook kernels (``OMP_NUM_THREADS`` and friends; ``None``:
        leave the environment alone). One thread by default: gradient boosting with more OpenMP
        threads than free cores slows down many times on a shared machine.
    extra : dict
        More parameters for the notebooks that declare them (e.g. ``{"sample_points": 2000}``).
    """

    data: Path | None = None
    data_format: str = "auto"
    artifacts_dir: Path = DEFAULT_ARTIFACTS_DIR
    task_type: str = "regression"
    model_family: str | None = None
    run_search: bool = False
    skip_preprocessing: bool = False
    preprocess_only: bool = False
    evaluate_all_archs: bool = False
    n_trials: int = DEFAULT_N_TRIALS
    timeout: float | None = None
    n_jobs: int = 1
    storage: str | None = None
    seed: int = 0
    jobs: int = DEFAULT_N_JOBS
    penalty: float = DEFAULT_PENALTY
    test_fraction: float = 0.1
    notebook_dir: Path = NOTEBOOK_DIR
    book_results: Path | None = BOOK_RESULTS_DIR
    progress_bar: bool = True
    threads: int | None = 1
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task_type not in SEARCH_TASK_TYPES:
            raise ValueError(f"task_type must be one of {SEARCH_TASK_TYPES}, got {self.task_type!r}")
        if self.preprocess_only and self.skip_preprocessing:
            raise ValueError("preprocess_only and skip_preprocessing contradict each other")
        if self.n_trials < 1:
            raise ValueError(f"n_trials must be at least 1, got {self.n_trials}")
        if self.n_jobs < 1:
            raise ValueError(f"n_jobs must be at least 1, got {self.n_jobs}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")

    @property
    def paths(self) -> ArtifactPaths:
        return ArtifactPaths(Path(self.artifacts_dir).resolve())

    def notebooks(self) -> tuple[str, ...]:
        """The notebooks this run executes, in order."""
        return PREPROCESSING_NOTEBOOKS if self.preprocess_only else NOTEBOOKS

    def parameters(self, data_path: Path) -> dict:
        """Every value a notebook may declare in its ``parameters`` cell (absolute paths)."""
        paths = self.paths
        return {
            "data_path": str(Path(data_path).resolve()),
            "data_format": self.data_format,
            "artifacts_dir": str(paths.root),
            "task_type": self.task_type,
            "families": [self.model_family] if self.model_family else [],
            "run_search": self.run_search,
            "reuse_processed": self.skip_preprocessing,
            "evaluate_all_archs": self.evaluate_all_archs,
            "n_trials": self.n_trials,
            "timeout": self.timeout,
            "n_jobs": self.n_jobs,
            "storage": self.storage or paths.default_storage,
            "seed": self.seed,
            "n_generated_jobs": self.jobs,
            "penalty": self.penalty,
            "test_fraction": self.test_fraction,
        } | self.extra


@dataclass
class NotebookRun:
    """One executed notebook: its name, papermill's copy, the book's copy and the seconds it took."""

    name: str
    executed: Path
    book_copy: Path | None
    seconds: float


def generated_data_path(paths: ArtifactPaths, jobs: int, seed: int) -> Path:
    """Generate synthetic telemetry (with truth columns) once per size and seed; return its path.

    The default size and seed use :attr:`ArtifactPaths.default_data`; others get their own file.
    """
    from resource_prediction.data import ensure_default_data

    if jobs == DEFAULT_N_JOBS and seed == 0:
        return ensure_default_data(paths, jobs, seed)
    from resource_prediction.data import save_telemetry
    from resource_prediction.synthetic import generate_telemetry

    target = paths.data / f"generated_{jobs}_seed{seed}.csv"
    if not target.exists():
        log.info("generating %d jobs, seed %d -> %s", jobs, seed, target)
        save_telemetry(generate_telemetry(jobs, seed=seed, with_truth=True), target)
    return target


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextmanager
def kernel_threads(threads: int | None):
    """Set the thread variables the notebook kernels inherit (restored afterwards)."""
    if threads is None:
        yield
        return
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update({name: str(threads) for name in THREAD_VARIABLES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def declared_parameters(notebook: Path) -> set[str]:
    """The names a notebook's ``parameters`` cell declares."""
    import papermill

    return set(papermill.inspect_notebook(str(notebook)))


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_CELL_LINE = re.compile(r"Cell In\[\d+\], line (\d+)")


def _cell_label(exc) -> str:
    """``cell 4 (In [3]), line 18: `df = load_telemetry(data_file)``` from a papermill error."""
    where = f"cell {exc.cell_index + 1}" + (f" (In [{exc.exec_count}])" if exc.exec_count else "")
    lines = (exc.source or "").splitlines()
    match = _CELL_LINE.search(_ANSI.sub("", "\n".join(exc.traceback or [])))
    if match and 0 < int(match.group(1)) <= len(lines):
        number = int(match.group(1))
        return f"{where}, line {number}: `{lines[number - 1].strip()[:100]}`"
    first = next((ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")), "")
    return f"{where}: `{first.strip()[:100]}`" if first else where


def run_notebook(name: str, parameters: dict, config: PipelineConfig) -> NotebookRun:
    """Execute one notebook with papermill; raise :class:`PipelineError` when a cell fails."""
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    source = Path(config.notebook_dir) / f"{name}.ipynb"
    if not source.exists():
        raise FileNotFoundError(f"notebook {source} does not exist")
    executed = config.paths.notebooks / f"{name}.ipynb"
    executed.parent.mkdir(parents=True, exist_ok=True)
    declared = declared_parameters(source)
    injected = {k: v for k, v in parameters.items() if k in declared}
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(source), str(executed), parameters=injected, kernel_name=KERNEL_NAME,
            cwd=str(source.parent), progress_bar=config.progress_bar,
        )
    except PapermillExecutionError as exc:
        raise PipelineError(name, _cell_label(exc), f"{exc.ename}: {exc.evalue}", executed) from exc
    except (DeadKernelError, CellTimeoutError) as exc:
        raise PipelineError(name, "a cell", f"{type(exc).__name__}: {exc}", executed) from exc
    seconds = time.perf_counter() - start
    book_copy = None
    if config.book_results is not None:
        book_copy = Path(config.book_results) / executed.name
        write_book_copy(executed, book_copy)
    return NotebookRun(name, executed, book_copy, seconds)


#: Output mimetype of a live widget: meaningless in a static page.
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def write_book_copy(executed: Path, book_copy: Path) -> Path:
    """Copy an executed notebook for the book without its live-widget state, its copy of
    plotly.js (the book serves it once) and papermill's injected parameters (tagged ``remove-cell``).

    A notebook that displayed ipywidgets carries their state (here the simulation's chart data,
    megabytes) in its metadata; Jupyter Book then loads require.js and the widget manager from a
    CDN to render it. Widgets need a kernel anyway, so the copy drops the state and the widget
    views: the page is smaller and works offline. Other outputs are kept as they are.
    """
    import nbformat

    from resource_prediction.plots.offline import is_plotlyjs_output

    nb = nbformat.read(executed, as_version=4)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.metadata["tags"] = [*cell.metadata["tags"], "remove-cell"]
        outputs = [o for o in cell.get("outputs", []) if not is_plotlyjs_output(o)]
        for output in outputs:
            data = output.get("data")
            if data and WIDGET_VIEW in data:
                del data[WIDGET_VIEW]
        if cell.cell_type == "code":
            cell.outputs = outputs
    book_copy.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, book_copy)
    return book_copy


def _check_build_telemetry(data: Path, data_format: str) -> None:
    """The notebooks explore and chart build telemetry: other sources go through the subcommands."""
    from resource_prediction.data import detect_file_format

    found = data_format if data_format != "auto" else (detect_file_format(data) if data.exists() else "build")
    if found != "build":
        raise ValueError(
            f"{data} is {found} telemetry: the notebooks describe build telemetry; train and evaluate "
            f"{found} data with `resource-prediction evaluate --data {data.name} --evaluate-all-archs` "
            "(and `search`), then `predict` and `export`"
        )


def run_pipeline(config: PipelineConfig, echo=print) -> list[NotebookRun]:
    """Run the notebooks of ``config`` in order, one line per notebook through ``echo``.

    Returns the executed notebooks; raises :class:`PipelineError` on the first failing cell.
    """
    paths = config.paths.ensure()
    data = Path(config.data) if config.data else generated_data_path(paths, config.jobs, config.seed)
    if not data.exists():
        echo(f"warning: data file {data} does not exist (notebook 01 will fail)")
    _check_build_telemetry(data, config.data_format)
    if config.skip_preprocessing and not has_processed(paths):
        raise FileNotFoundError(
            f"--skip-preprocessing: no processed data in {paths.processed}; run without it first"
        )
    if config.model_family:
        try:
            get_family(config.model_family)
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None
    parameters = config.parameters(data)
    names = config.notebooks()
    echo(f"pipeline: {len(names)} notebooks, data {data}, artifacts {paths.root}")
    log.debug("pipeline configuration: %s", asdict(config))
    runs = []
    with kernel_threads(config.threads):
        for i, name in enumerate(names, 1):
            echo(f"[{i}/{len(names)}] {name} ...")
            run = run_notebook(name, parameters, config)
            echo(f"[{i}/{len(names)}] {name} done in {run.seconds:.1f} s -> {run.executed}")
            runs.append(run)
    if config.book_results is not None and "04_evaluation" in names:
        from resource_prediction.glance import GLANCE_PAGE, write_glance_page

        page = write_glance_page(paths, Path(config.book_results) / GLANCE_PAGE)
        echo(f"results at a glance -> {page}")
    if config.book_results is not None:
        from resource_prediction.quality_page import (
            QUALITY_PAGE,
            REFERENCE_BENCH,
            write_quality_page,
        )

        bench = (paths.root / "bench" / "quality.json", REFERENCE_BENCH)
        page = write_quality_page(Path(config.book_results) / QUALITY_PAGE, bench)
        echo(f"allocation quality -> {page}")
    return runs
