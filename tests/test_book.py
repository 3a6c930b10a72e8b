"""The Jupyter Book: its sources agree with the code, its example runs, and its pages render.

The browser test opens the pages built by ``tests/test_pipeline.py``'s tiny run (shared through
:func:`test_pipeline.built_book`) in Debian's headless Chromium, offline.
"""

from __future__ import annotations

import json
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
    generated = ["book/results/glance", "book/results/quality"]  # pages written from reports
    assert [f for f in results if f not in generated] == [f"book/results/{n}" for n in NOTEBOOKS]
    assert set(generated) <= set(results)
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


#: What every page shows once loaded (MathJax typesetting finished): its text, the text of its
#: notebook outputs (hidden toggles included, scripts excluded), its charts and its formulas.
PAGE_STATE_JS = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const visibleText = el => {
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    let out = "";
    while (walker.nextNode()) {
      const tag = walker.currentNode.parentElement.tagName;
      if (tag !== "SCRIPT" && tag !== "STYLE") { out += walker.currentNode.textContent + " "; }
    }
    return out;
  };
  const charts = [...document.querySelectorAll(".plotly-graph-div")];
  return {
    text: document.body.innerText,
    outputs: [...document.querySelectorAll(".cell_output")].map(visibleText).join("\\n"),
    charts: charts.length,
    drawn: charts.filter(d => d.querySelector("svg.main-svg")).length,
    math: document.querySelectorAll(".math").length,
    typeset: document.querySelectorAll("mjx-container").length,
  };
}"""
REDIRECT = re.compile(r'http-equiv="Refresh" content="0; url=([^"]+)"', re.IGNORECASE)
RAW_TEX = re.compile(r"\\\[|\\\(|\$\$")
NOISE = re.compile(r"\w*(?:Error|Warning)\b|Traceback")
#: The five results pages together stay under this size (plotly.js is served once from _static).
RESULTS_PAGES_MAX_BYTES = 8_000_000


def book_pages(html: Path) -> list[Path]:
    """Every HTML page of a built book (theme assets and page sources excluded)."""
    skip = {"_static", "_sources", "_images"}
    return sorted(p for p in html.rglob("*.html") if not skip & set(p.relative_to(html).parts))


def check_page(browser, path: Path, machine_paths: list[str]) -> tuple[dict, list[str]]:
    """Open one page offline (every non-file request blocked); return its state and its problems."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors, remote = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))

    def route(r):
        if r.request.url.startswith(("file:", "data:", "blob:", "about:")):
            r.continue_()
        else:
            remote.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    try:
        page.goto(path.as_uri(), wait_until="load")
        redirect = REDIRECT.search(path.read_text())  # index.html redirects to the first page
        if redirect:
            page.wait_for_url((path.parent / redirect.group(1)).resolve().as_uri())
            page.wait_for_load_state("load")
        state = page.evaluate(PAGE_STATE_JS)
    finally:
        page.close()
    html = path.read_text()
    problems = [f"console: {e[:200]}" for e in errors] + [f"remote request: {u}" for u in remote]
    if state["drawn"] != state["charts"]:
        problems.append(f"{state['charts'] - state['drawn']} of {state['charts']} charts not drawn")
    if state["math"] and not state["typeset"]:
        problems.append(f"{state['math']} formulas not typeset")
    problems += [f"raw TeX: {m!r}" for m in RAW_TEX.findall(state["text"])[:3]]
    problems += [f"output text: {m!r}" for m in NOISE.findall(state["outputs"])[:3]]
    if "Traceback" in state["text"]:
        problems.append("a traceback in the page")
    problems += [f"absolute path {p}" for p in machine_paths if p in html]
    return state, problems


@pytest.mark.slow
def test_every_page_renders_offline_without_noise(browser, book):
    """Every page of the tiny pipeline's book, offline: charts drawn, formulas typeset, no console
    error, no error or warning text in notebook outputs, no traceback, no build-machine path.
    Page sizes are printed and written next to the book (``page_sizes.json``)."""
    assert book["book_rc"] == 0, Path(book["book_log"]).read_text()[-4000:]
    html = Path(book["html"])
    machine_paths = [str(PROJECT_ROOT), str(Path(book["artifacts"]).parent), "sqlite:////"]
    pages = book_pages(html)
    names = {p.relative_to(html).as_posix() for p in pages}
    tables = {"book/results/glance.html"}  # a page of tables, no chart
    assert {f"book/results/{n}.html" for n in NOTEBOOKS} | tables | {"book/results/quality.html"} <= names
    problems, sizes = {}, {}
    for path in pages:
        rel = path.relative_to(html).as_posix()
        state, found = check_page(browser, path, machine_paths)
        if rel.startswith("book/results/") and rel not in tables and not state["charts"]:
            found.append("no chart on a results page")
        if found:
            problems[rel] = found
        sizes[rel] = path.stat().st_size
    results = {k: v for k, v in sizes.items() if k.startswith("book/results/")}
    report = {"pages": sizes, "results_pages_bytes": sum(results.values())}
    (html.parent / "page_sizes.json").write_text(json.dumps(report, indent=2))
    print("\n".join(f"{size / 1e6:8.3f} MB  {rel}" for rel, size in sorted(sizes.items())))
    print(f"results pages together: {report['results_pages_bytes'] / 1e6:.2f} MB")
    assert not problems, problems
    assert report["results_pages_bytes"] < RESULTS_PAGES_MAX_BYTES, results
    assert (html / "_static" / "plotly.min.js").exists()
    assert not list((html / "_static").glob("*webpack-macros.html"))


@pytest.mark.slow
def test_results_pages_load_plotly_once_from_static(browser, book):
    """No results page embeds plotly.js: each loads the book's one copy, and a screenshot of each
    is kept next to the built book for a human look."""
    html = Path(book["html"])
    for name in ("glance", *NOTEBOOKS):
        path = html / "book" / "results" / f"{name}.html"
        text = path.read_text()
        assert text.count("_static/plotly.min.js") == (0 if name == "glance" else 1), name
        assert "window.PlotlyConfig" not in text and len(text) < 2_000_000, name
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        try:
            page.goto(path.as_uri(), wait_until="load")
            page.screenshot(path=str(html.parent / f"{name}.png"))
        finally:
            page.close()
