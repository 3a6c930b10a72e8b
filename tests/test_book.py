"""The Jupyter Book: its sources agree with the code, its example runs, and its pages render.

The browser test opens the pages built by ``tests/test_pipeline.py``'s tiny run (shared through
:func:`test_pipeline.built_book`) in Debian's headless Chromium, offline.
"""

from __future__ import annotations

import importlib.util
import pkgutil
import re
from pathlib import Path

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


def load_example():
    """The extending page's worked example, imported from its file."""
    path = BOOK / "examples" / "log_ridge.py"
    spec = importlib.util.spec_from_file_location("log_ridge_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def test_extending_example_searches_and_predicts(small_telemetry):
    from resource_prediction.data import time_split
    from resource_prediction.metrics import business_score
    from resource_prediction.preprocessing import ModelPreprocessor
    from resource_prediction.registry import MODEL_FAMILIES, get_family, unregister_family
    from resource_prediction.training.search import HyperparameterSearcher

    example = load_example()
    assert example.FAMILY.name not in MODEL_FAMILIES
    example.register()
    try:
        family = get_family("log_ridge_regression")
        train, holdout = time_split(small_telemetry)
        searcher = HyperparameterSearcher(
            train, families=[family.name], n_trials=2, storage="memory", show_progress_bar=False,
        )
        result = searcher.run()[family.name]
        assert result.status == "ok" and result.n_complete == 2
        pre = ModelPreprocessor(encoding=family.estimator_class.preferred_encoding)
        model = family.make_estimator(result.best_params).fit(pre.fit_transform(train), train["max_rss_gb"])
        allocation = model.predict(pre.transform(holdout))
        assert allocation.shape == (len(holdout),) and (allocation > 0).all()
        assert business_score(allocation, holdout["max_rss_gb"]) > 0
    finally:
        unregister_family("log_ridge_regression")


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
