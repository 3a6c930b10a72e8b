"""The notebooks run by papermill, the command line that drives them, and the book built from them.

The slow tests run the whole pipeline once on a tiny configuration (a few thousand generated jobs, two
Optuna trials per family) into a temporary artifacts directory, build the book from a temporary copy
of its sources, and share both (see :func:`built_book`): a user's ``artifacts/``, ``book/results/``
and ``_build/`` are never touched.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from resource_prediction.cli import main
from resource_prediction.pipeline import (
    NOTEBOOKS,
    PROJECT_ROOT,
    WIDGET_VIEW,
    PipelineConfig,
    declared_parameters,
    write_book_copy,
)

TINY_JOBS = 3000
TINY_TRIALS = 2
#: Notebooks of this issue (05 belongs to the simulation) and the parameters only they set.
OWN_NOTEBOOKS = NOTEBOOKS[:4]
NOTEBOOK_ONLY_PARAMETERS = {"sample_points", "n_boot"}
BOOK_SOURCES = ("_config.yml", "_toc.yml", "book")


def _run(cmd: list[str], log: Path, timeout: float, cwd: Path | None = None) -> subprocess.CompletedProcess:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    log.write_text(
        f"$ {' '.join(map(str, cmd))}\n# exit {proc.returncode} after {time.perf_counter() - start:.1f} s\n"
        f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    )
    return proc


def built_book(base: Path) -> dict:
    """Run the tiny pipeline and build the book under ``base`` once; later calls reuse the result.

    Returns the paths (``artifacts``, ``book`` source copy, ``html``), the two processes and their
    wall-clock seconds.
    """
    done = base / "built.json"
    if done.exists():
        return json.loads(done.read_text())
    if base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True)
    src = base / "book_src"
    src.mkdir()
    for name in BOOK_SOURCES:
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, src / name, ignore=shutil.ignore_patterns("_build", "*.ipynb"))
        else:
            shutil.copy2(source, src / name)
    artifacts = base / "artifacts"
    start = time.perf_counter()
    pipeline = _run(
        [sys.executable, "-m", "resource_prediction", "--run-search", "--evaluate-all-archs",
         "--jobs", str(TINY_JOBS), "--n-trials", str(TINY_TRIALS), "--artifacts-dir", str(artifacts),
         "--book-results", str(src / "book" / "results")],
        base / "pipeline.log", timeout=900,
    )
    pipeline_s = time.perf_counter() - start
    start = time.perf_counter()
    book = _run(
        [str(Path(sys.executable).with_name("jupyter-book")), "build", "-W", "--keep-going",
         "--path-output", str(src), str(src)],
        base / "book.log", timeout=600,
    )
    book_s = time.perf_counter() - start
    result = {
        "artifacts": str(artifacts), "src": str(src), "html": str(src / "_build" / "html"),
        "pipeline_rc": pipeline.returncode, "book_rc": book.returncode,
        "pipeline_log": str(base / "pipeline.log"), "book_log": str(base / "book.log"),
        "pipeline_s": pipeline_s, "book_s": book_s,
    }
    done.write_text(json.dumps(result, indent=2))
    return result


@pytest.fixture(scope="session")
def book(tmp_path_factory) -> dict:
    return built_book(tmp_path_factory.getbasetemp() / "pipeline_book")


# ---------------------------------------------------------------------------- fast checks
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_clean_with_one_parameters_cell(name):
    nb = nbformat.read(PROJECT_ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{name}: {len(tagged)} cells tagged 'parameters'"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), f"{name} has outputs"
    assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("name", OWN_NOTEBOOKS)
def test_pipeline_sets_every_parameter_a_notebook_declares(name, tmp_path):
    declared = declared_parameters(PROJECT_ROOT / "notebooks" / f"{name}.ipynb")
    data = tmp_path / "jobs.csv"
    data.write_text("x\n")
    offered = set(PipelineConfig(artifacts_dir=tmp_path).parameters(data))
    assert declared - NOTEBOOK_ONLY_PARAMETERS <= offered, declared - offered


def test_config_rejects_contradictions(tmp_path):
    with pytest.raises(ValueError, match="contradict"):
        PipelineConfig(preprocess_only=True, skip_preprocessing=True)
    with pytest.raises(ValueError, match="task_type"):
        PipelineConfig(task_type="ranking")
    assert PipelineConfig(preprocess_only=True).notebooks() == NOTEBOOKS[:2]


def test_skip_preprocessing_without_processed_data_is_refused(tmp_path, capsys):
    rc = main(["--skip-preprocessing", "--artifacts-dir", str(tmp_path / "a"), "--jobs", "300",
               "--book-results", str(tmp_path / "results")])
    assert rc == 2
    assert "no processed data" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_processed_data_round_trips_and_refuses_another_file(tmp_path, small_telemetry):
    from resource_prediction.data import save_telemetry, time_split
    from resource_prediction.paths import ArtifactPaths
    from resource_prediction.preprocessing import ModelPreprocessor
    from resource_prediction.processed import has_processed, read_processed, write_processed

    paths = ArtifactPaths(tmp_path / "artifacts")
    data = save_telemetry(small_telemetry.iloc[:600], tmp_path / "jobs.csv")
    train, holdout = time_split(small_telemetry.iloc[:600])
    pre = ModelPreprocessor()
    frames = {"train": train, "holdout": holdout, "X_train": pre.fit_transform(train),
              "X_holdout": pre.transform(holdout)}
    assert not has_processed(paths)
    write_processed(paths, frames, pre, data, 0.1)
    back, pre_back, manifest = read_processed(paths, data)
    assert has_processed(paths) and manifest["rows"]["holdout"] == len(holdout)
    assert back["X_holdout"].equals(frames["X_holdout"])
    assert pre_back.feature_names_ == pre.feature_names_
    other = save_telemetry(small_telemetry.iloc[:500], tmp_path / "other.csv")
    with pytest.raises(ValueError, match="comes from"):
        read_processed(paths, other)


def test_kernel_threads_are_set_for_the_kernels_and_restored(monkeypatch):
    from resource_prediction.pipeline import THREAD_VARIABLES, kernel_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    with kernel_threads(2):
        assert all(os.environ[name] == "2" for name in THREAD_VARIABLES)
    assert os.environ["OMP_NUM_THREADS"] == "7" and "MKL_NUM_THREADS" not in os.environ
    with kernel_threads(None):
        assert os.environ["OMP_NUM_THREADS"] == "7"


def test_model_type_is_an_alias_of_task_type():
    from resource_prediction.cli import build_parser

    args = build_parser().parse_args(["--model-type", "classification", "--run-search"])
    assert args.task_type == "classification" and args.run_search and args.command is None


# ---------------------------------------------------------------------------- slow: the real thing
@pytest.mark.slow
def test_pipeline_executes_every_notebook_with_the_venv_kernel(book):
    assert book["pipeline_rc"] == 0, Path(book["pipeline_log"]).read_text()[-4000:]
    log = Path(book["pipeline_log"]).read_text()
    artifacts = Path(book["artifacts"])
    for i, name in enumerate(NOTEBOOKS, 1):
        assert f"[{i}/{len(NOTEBOOKS)}] {name} done" in log
        executed = nbformat.read(artifacts / "notebooks" / f"{name}.ipynb", as_version=4)
        assert (Path(book["src"]) / "book" / "results" / f"{name}.ipynb").exists()
        injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert len(injected) == 1 and str(artifacts) in injected[0].source
        errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs
                  if o.output_type == "error"]
        assert not errors, f"{name}: {errors[:1]}"
    glance = Path(book["src"]) / "book" / "results" / "glance.md"
    assert f"results at a glance -> {glance}" in log
    assert "**The champion is `" in glance.read_text()
    first = nbformat.read(artifacts / "notebooks" / f"{NOTEBOOKS[0]}.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in first.cells if c.cell_type == "code" for o in c.outputs)
    assert f"kernel {sys.executable}" in text  # the kernel is this virtual environment's python


@pytest.mark.slow
def test_pipeline_writes_processed_data_studies_and_reports(book):
    artifacts = Path(book["artifacts"])
    manifest = json.loads((artifacts / "data" / "processed" / "manifest.json").read_text())
    assert manifest["rows"]["train"] + manifest["rows"]["holdout"] == TINY_JOBS
    assert (artifacts / "studies" / "optuna.db").stat().st_size > 0
    results = artifacts / "reports" / "holdout_results.csv"
    assert results.exists() and len(results.read_text().splitlines()) > 2


@pytest.mark.slow
def test_book_builds_without_warnings(book):
    log = Path(book["book_log"]).read_text()
    assert book["book_rc"] == 0, log[-4000:]
    warnings = [line for line in log.splitlines() if "WARNING" in line]
    assert not warnings, warnings[:10]
    html = Path(book["html"])
    for name in NOTEBOOKS:
        assert (html / "book" / "results" / f"{name}.html").exists()
    assert (html / "book" / "api.html").read_text().count('class="sig-name descname"') > 20


@pytest.mark.slow
def test_book_pages_load_nothing_from_a_network(book):
    """Widget state is left out of the book copies, so no page needs require.js or a CDN."""
    html = Path(book["html"]) / "book" / "results"
    for name in NOTEBOOKS:
        copy = nbformat.read(Path(book["src"]) / "book" / "results" / f"{name}.ipynb", as_version=4)
        assert "widgets" not in copy.metadata
        page = (html / f"{name}.html").read_text()
        remote = re.findall(r'<script[^>]+src="(https?://[^"]+)"', page)
        assert not remote, f"{name}.html loads {remote}"


def test_book_copy_drops_widget_state_and_views(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"x": {}}}}
    view = {WIDGET_VIEW: {"model_id": "x"}, "text/plain": "App()"}
    nb.cells = [nbformat.v4.new_code_cell("app", outputs=[
        nbformat.v4.new_output("display_data", data=view),
        nbformat.v4.new_output("display_data", data={"text/html": "<b>kept</b>"}),
    ])]
    source = tmp_path / "executed.ipynb"
    nbformat.write(nb, source)
    copy = nbformat.read(write_book_copy(source, tmp_path / "book" / "copy.ipynb"), as_version=4)
    assert "widgets" not in copy.metadata
    outputs = copy.cells[0].outputs
    assert [dict(o.data) for o in outputs] == [{"text/plain": "App()"}, {"text/html": "<b>kept</b>"}]
    assert "widgets" in nbformat.read(source, as_version=4).metadata  # the executed copy is intact


@pytest.mark.slow
def test_failing_cell_exits_non_zero_naming_notebook_and_cell(tmp_path):
    missing = tmp_path / "missing.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "resource_prediction", "--preprocess-only", "--data", str(missing),
         "--artifacts-dir", str(tmp_path / "artifacts"), "--book-results", str(tmp_path / "results")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert proc.returncode == 1
    err = proc.stderr
    assert "notebook 01_data_exploration failed in cell" in err and "In [" in err
    assert "load_telemetry" in err and "TelemetryError" in err and str(missing) in err
    executed = tmp_path / "artifacts" / "notebooks" / "01_data_exploration.ipynb"
    assert f"the executed notebook with the error: {executed}" in err
    nb = nbformat.read(executed, as_version=4)
    assert any(o.output_type == "error" for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert not (tmp_path / "results" / "01_data_exploration.ipynb").exists()
