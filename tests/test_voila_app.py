"""The simulation served by Voila, driven in headless Chromium (Playwright).

Starts Voila on a free localhost port against ``notebooks/05_simulation.ipynb``, pointed at a
temporary artifacts directory with small trained models through ``RESOURCE_PREDICTION_ARTIFACTS``
(the notebook's ``artifacts_dir`` parameter is empty by default), waits for the chart, presses Step
and checks the counters against the same replay computed here; then Play and Pause, and a model
switch. The server is stopped in the fixture's teardown.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from resource_prediction.deployable import DeployableModel
from resource_prediction.metrics import allocation_metrics
from resource_prediction.simulation import ARTIFACTS_ENV, ReplaySimulation, load_simulation_jobs

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "05_simulation.ipynb"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]
PAGE_TIMEOUT_MS = 240_000



@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    from test_simulation import make_artifacts

    return make_artifacts(tmp_path_factory.mktemp("voila_artifacts"))


@pytest.fixture(scope="module")
def voila_url(artifacts, tmp_path_factory, free_port):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (make browser installs Debian's chromium)")
    port = free_port()
    log = (tmp_path_factory.mktemp("voila_log") / "voila.log").open("w")
    env = os.environ | {ARTIFACTS_ENV: str(artifacts)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "voila", str(NOTEBOOK), "--no-browser", f"--port={port}",
         "--Voila.ip=127.0.0.1"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"voila exited with {proc.returncode}: see {log.name}")
            try:
                urllib.request.urlopen(f"{url}voila/static/", timeout=2)
            except urllib.error.HTTPError:
                break  # the server answers (404 is fine)
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"voila did not start on {url}: see {log.name}") from None
                time.sleep(0.5)
            else:
                break
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _text(page, selector: str) -> str:
    return page.inner_text(selector).strip()


def test_voila_app_steps_plays_and_switches(voila_url, artifacts, tmp_path):
    from playwright.sync_api import sync_playwright

    # The same first job, replayed here: what the counters must show after one step.
    holdout = load_simulation_jobs(None, artifacts)
    sim = ReplaySimulation(holdout)
    sim.set_model("clf", DeployableModel.load(
        artifacts / "trained_models" / "app" / "classification" / "xgboost_classification.pkl"))
    sim.step()
    expected = allocation_metrics(sim.history()["allocated_gb"], holdout["max_rss_gb"].iloc[:1])

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            page.goto(voila_url, timeout=PAGE_TIMEOUT_MS)
            page.wait_for_selector(".rp-simulation .js-plotly-plot", timeout=PAGE_TIMEOUT_MS)
            page.wait_for_selector(".rp-counters .rp-jobs", timeout=60_000)
            assert _text(page, ".rp-counters .rp-jobs") == "0"
            # Sources are hidden (Voila's default): no code of the notebook on the page.
            assert "SimulationApp(" not in page.content()

            page.click("button.rp-step")
            page.wait_for_function(
                "document.querySelector('.rp-counters .rp-jobs').textContent.trim() === '1'",
                timeout=30_000,
            )
            assert _text(page, ".rp-counters .rp-score") == f"{expected['business_score']:.1f}"
            assert _text(page, ".rp-counters .rp-under") == f"{expected['under_pct']:.2f} %"
            assert "Last job" in _text(page, ".rp-model-panel")
            # The allocation trace of the live chart now has a point.
            page.wait_for_function(
                "(() => { const d = document.querySelector('.rp-simulation .js-plotly-plot').data;"
                " return d && d.length === 4 && d[1].x && d[1].x.length === 1; })()",
                timeout=30_000,
            )

            # Play runs without blocking the kernel: the counters move, Pause stops them.
            page.click("button.rp-play")
            page.wait_for_function(
                "Number(document.querySelector('.rp-counters .rp-jobs').textContent) >= 5",
                timeout=60_000,
            )
            page.click("button.rp-pause")
            page.wait_for_function(
                "!document.querySelector('.rp-status').textContent.includes('playing')", timeout=30_000
            )
            paused_at = int(_text(page, ".rp-counters .rp-jobs").replace(",", ""))
            time.sleep(1.0)
            assert int(_text(page, ".rp-counters .rp-jobs").replace(",", "")) == paused_at
            if "finished" in _text(page, ".rp-status"):
                # Fast models replay all 300 jobs before the pause lands: restart and step once so
                # the switch below happens mid-replay.
                page.click("button.rp-reset")
                page.wait_for_function(
                    "document.querySelector('.rp-status').textContent.includes('job 0 of')",
                    timeout=30_000,
                )
                page.click("button.rp-step")
                page.wait_for_function(
                    "document.querySelector('.rp-status').textContent.includes('job 1 of')",
                    timeout=30_000,
                )
                paused_at = 1

            # Switch model mid-replay: the position is kept, the panel names the new model.
            page.get_by_label("lightgbm_regression").check()
            page.wait_for_function(
                "document.querySelector('.rp-model-panel').textContent.includes('lightgbm_regression')",
                timeout=30_000,
            )
            page.click("button.rp-step")
            page.wait_for_function(
                f"document.querySelector('.rp-status').textContent.includes('job {paused_at + 1} of')",
                timeout=30_000,
            )
            status = _text(page, ".rp-status")
            assert re.search(rf"job {paused_at + 1} of 300", status), status

            # A damaged artifact is an error in the panel; the app stays usable.
            page.get_by_label("Quantile Ensemble: Small Memory Waste").check()
            page.wait_for_selector(".rp-model-panel .rp-error", timeout=30_000)
            assert "qe_small_waste.pkl" in _text(page, ".rp-model-panel .rp-error")
            page.get_by_label("Classification").check()
            page.wait_for_function(
                "!document.querySelector('.rp-model-panel .rp-error')", timeout=30_000
            )
            # The static animation (the notebook's last cell) is on the page too.
            assert page.locator(".plotly-graph-div.js-plotly-plot").count() == 1
            shot = tmp_path / "voila_app.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}")
        finally:
            browser.close()
