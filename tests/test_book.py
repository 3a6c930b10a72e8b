"""The Jupyter Book: its sources agree with the code, its example runs, and its pages render.

The browser test opens the pages built by ``tests/test_pipeline.py``'s tiny run (shared through
:func:`test_pipeline.built_book`) in Debian's headless Chromium, offline.
"""

from __future__ import annotations

import os
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import resource_prediction
from resource_prediction.pipeline import NOTEBOOKS, PROJECT_ROOT

BOOK = PROJECT_ROOT / "book"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]


def _toc_files(node) -> list[str]:
    out = []
    if isinstance(node, dict):
        if "file" in node:
            out.append(node["file"])
        if "root" in node:
            out.append(node["root"])
        for value in node.values():
            out += _toc_files(value)
    elif isinstance(node, list):
        for item in node:
            out += _toc_files(item)
    return out


def captioned_blocks(page: str) -> dict[str, str]:
    """The ``{code-block} python`` blocks of a book page, by caption."""
    pattern = re.compile(r"```\{code-block\} python\n:caption: ([^\n]+)\n\n(.*?)```", re.S)
    return {caption: body for caption, body in pattern.findall((BOOK / page).read_text())}


def fenced_python(page: str) -> list[str]:
    """The plain ````python`` blocks of a book page."""
    return re.findall(r"```python\n(.*?)```", (BOOK / page).read_text(), re.S)


# ---------------------------------------------------------------------------- sources
def test_toc_names_existing_pages_and_every_executed_notebook():
    toc = yaml.safe_load((PROJECT_ROOT / "_toc.yml").read_text())
    assert toc["format"] == "jb-book"
    files = _toc_files(toc)
    results = [f for f in files if f.startswith("book/results/")]
    assert results == [f"book/results/{name}" for name in NOTEBOOKS]
    for page in set(files) - set(results):
        assert (PROJECT_ROOT / f"{page}.md").exists(), page
    config = yaml.safe_load((PROJECT_ROOT / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "off"
    assert config["only_build_toc_files"] is True


def test_api_page_documents_every_module():
    text = (BOOK / "api.md").read_text()
    documented = set(re.findall(r"\.\. automodule:: (\S+)", text))
    modules = {m.name for m in pkgutil.walk_packages(resource_prediction.__path__, "resource_prediction.")}
    modules.discard("resource_prediction.__main__")
    assert modules <= documented, sorted(modules - documented)
    assert documented <= modules | {"resource_prediction.training"}, sorted(documented - modules)


def test_usage_page_lists_every_pipeline_flag():
    from resource_prediction.cli import build_parser

    text = (BOOK / "usage.md").read_text()
    flags = [
        opt for action in build_parser()._actions if action.dest not in ("help", "command")
        for opt in action.option_strings if opt.startswith("--")
    ]
    assert "--model-type" in flags and "--run-search" in flags
    missing = [flag for flag in flags if f"`{flag}" not in text]
    assert not missing, missing


def test_extending_page_includes_the_tested_example():
    text = (BOOK / "extending.md").read_text()
    assert "examples/log_ridge.py" in text and "literalinclude" in text


def _package_with_the_new_family(root: Path) -> Path:
    """A copy of the package with the extending page's module and registry blocks, nothing else."""
    blocks = captioned_blocks("extending.md")
    copy = root / "resource_prediction"
    shutil.copytree(Path(resource_prediction.__file__).parent, copy,
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(BOOK / "examples" / "log_ridge.py", copy / "models" / "log_ridge.py")
    registry = (copy / "registry.py").read_text()
    imports = [ln for ln in registry.splitlines(keepends=True) if ln.startswith("from resource_prediction.models")]
    registry = registry.replace(imports[-1], imports[-1] + blocks["registry import"].strip() + "\n", 1)
    end = registry.index("    )\n}\n")  # the end of the tuple that builds MODEL_FAMILIES
    entry = "".join(f"        {line}" if line.strip() else line
                    for line in blocks["registry entry"].splitlines(keepends=True))
    (copy / "registry.py").write_text(registry[:end] + entry + registry[end:])
    return root


def test_extending_page_adds_a_family_with_one_module_and_one_entry(small_telemetry, tmp_path):
    """The page's module and registry entry, added to a copy of the package, make a family that the
    command line searches and evaluates with no other change."""
    from resource_prediction.data import save_telemetry

    source = _package_with_the_new_family(tmp_path / "src")
    data = save_telemetry(small_telemetry, tmp_path / "jobs.csv")
    artifacts = tmp_path / "artifacts"
    env = {**os.environ, "PYTHONPATH": str(source)}
    for command in (["search", "--n-trials", "2", "--no-progress-bar"], ["evaluate"]):
        run = subprocess.run(
            [sys.executable, "-m", "resource_prediction", *command, "--data", str(data),
             "--artifacts-dir", str(artifacts), "--model-family", "log_ridge_regression"],
            env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path,
        )
        assert run.returncode == 0, run.stderr[-3000:]
    searched = pd.read_csv(artifacts / "reports" / "search_summary.csv").set_index("family")
    assert searched.loc["log_ridge_regression", "status"] == "ok"
    assert searched.loc["log_ridge_regression", "n_complete"] == 2
    holdout = pd.read_csv(artifacts / "reports" / "holdout_results.csv").set_index("family")
    assert holdout.loc["log_ridge_regression", "param_source"] == "study"
    assert np.isfinite(holdout.loc["log_ridge_regression", "business_score"])


def test_extending_page_composed_family_fits(small_telemetry):
    """The page's composed family (an entry over an existing model, no module) fits and predicts."""
    import optuna
    from sklearn.ensemble import HistGradientBoostingClassifier

    from resource_prediction.data import time_split
    from resource_prediction.models import BinnedClassifier
    from resource_prediction.models.binned import binned_search_space
    from resource_prediction.preprocessing import ModelPreprocessor
    from resource_prediction.registry import ModelFamily

    entry = next(block for block in fenced_python("extending.md") if "hgb_classification" in block)
    family = eval(entry.strip().rstrip(","), {  # noqa: S307 - the book's own text
        "ModelFamily": ModelFamily, "BinnedClassifier": BinnedClassifier,
        "HistGradientBoostingClassifier": HistGradientBoostingClassifier,
        "binned_search_space": binned_search_space,
    })
    params = family.search_space(optuna.trial.FixedTrial({
        "pre__use_quant_features": True, "n_bins": 5, "strategy": "quantile",
        "confidence_threshold": 0.5, "top_margin": 1.2, "decision": "argmax",
        "classifier__learning_rate": 0.1,
    }))
    train, holdout = time_split(small_telemetry)
    pre = ModelPreprocessor(encoding=family.preferred_encoding)
    model = family.make_estimator(params).fit(pre.fit_transform(train), train["max_rss_gb"])
    assert model.classifier_.get_params()["learning_rate"] == 0.1
    assert (model.predict(pre.transform(holdout)) > 0).all()


# ---------------------------------------------------------------------------- built pages
@pytest.fixture(scope="session")
def book(tmp_path_factory) -> dict:
    """The tiny pipeline run and book build of ``tests/test_pipeline.py`` (built once per session)."""
    from test_pipeline import built_book

    return built_book(tmp_path_factory.getbasetemp() / "pipeline_book")


@pytest.fixture(scope="module")
def browser():
    """One Chromium for this module; closed at its end, so that Playwright's event loop does not
    outlive the module (other tests run their own asyncio loops)."""
    playwright = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _open(browser, path: Path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri(), wait_until="load")
    page.wait_for_function(
        "() => document.querySelectorAll('.js-plotly-plot').length > 0", timeout=30_000
    )
    return page, requests


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_results_page_renders_plotly_charts_offline(name, browser, book):
    html = Path(book["html"]) / "book" / "results" / f"{name}.html"
    assert html.exists(), f"{html} missing: the pipeline or the book build failed"
    page, requests = _open(browser, html)
    try:
        rendered = page.evaluate(
            "() => [...document.querySelectorAll('.js-plotly-plot')]"
            ".filter(d => d.querySelector('svg.main-svg')).length"
        )
        drawn = page.evaluate("() => document.querySelectorAll('.plotly-graph-div').length")
        assert rendered > 0 and rendered == drawn, (rendered, drawn)
        if name == NOTEBOOKS[0]:  # for a human look: next to the built book
            page.screenshot(path=str(Path(book["html"]).parent / f"{name}.png"))
    finally:
        page.close()
    plotly_requests = [u for u in requests if "plotly" in u.lower() and not u.startswith("file:")]
    assert not plotly_requests, plotly_requests
    # No network request at all (the simulation page included: its book copy has no widget state).
    assert all(u.startswith(("file:", "data:", "blob:", "about:")) for u in requests), [
        u for u in requests if not u.startswith("file:")
    ]
