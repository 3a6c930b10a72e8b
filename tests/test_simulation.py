"""The simulation: the replay class, the model catalog, the widget layer and the static animation.

Small models are trained once per session on 3,000 generated jobs and saved in a temporary
artifacts directory with the training's layout (no mocks); a damaged copy stands for a broken file.
"""

from __future__ import annotations

import asyncio
import copy
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from resource_prediction.data import save_telemetry, time_split
from resource_prediction.deployable import DeployableModel
from resource_prediction.metrics import allocation_metrics
from resource_prediction.simulation import (
    ARTIFACTS_ENV,
    ReplaySimulation,
    discover_models,
    load_simulation_jobs,
    resolve_artifacts_dir,
)
from resource_prediction.simulation.animation import animation_for_artifacts, replay_animation
from resource_prediction.synthetic import generate_telemetry

#: trained_models/ layout of the test artifacts: file -> (family, small parameters for speed).
LAYOUT = {
    "app/classification/xgboost_classification.pkl": (
        "xgboost_classification", {"classifier__n_estimators": 30, "n_bins": 8}
    ),
    "app/qe/qe_balanced.pkl": ("qe_regression", {"hgb__max_iter": 30, "xgb__n_estimators": 30}),
    "lightgbm_regression.pkl": ("lightgbm_regression", {"booster__n_estimators": 60}),
}
BROKEN = "app/qe/qe_small_waste.pkl"
CLASSIFICATION = "app/classification/xgboost_classification.pkl"
QE = "app/qe/qe_balanced.pkl"
LGBM = "lightgbm_regression.pkl"


def make_artifacts(root: Path, n_jobs: int = 3000, seed: int = 0) -> Path:
    """Generated data and small trained models in ``root`` with the artifacts layout; returns root."""
    df = generate_telemetry(n_jobs, seed=seed)
    save_telemetry(df, root / "data" / "default_telemetry.csv")
    train, _ = time_split(df)
    models = root / "trained_models"
    for rel, (family, params) in LAYOUT.items():
        path = models / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        DeployableModel.train(family, train, params=params, seed=seed).save(path)
    shutil.copyfile(models / LGBM, models / "champion.pkl")
    # A damaged artifact: a real file with bytes flipped in the middle.
    raw = bytearray((models / QE).read_bytes())
    mid = len(raw) // 2
    raw[mid : mid + 64] = bytes(b ^ 0xFF for b in raw[mid : mid + 64])
    (models / BROKEN).write_bytes(bytes(raw))
    return root


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> Path:
    return make_artifacts(tmp_path_factory.mktemp("sim_artifacts"))


@pytest.fixture(scope="session")
def holdout(artifacts) -> pd.DataFrame:
    return load_simulation_jobs(None, artifacts)


@pytest.fixture(scope="session")
def loaded(artifacts) -> dict[str, DeployableModel]:
    return {rel: DeployableModel.load(artifacts / "trained_models" / rel) for rel in LAYOUT}


def fresh(loaded, rel) -> DeployableModel:
    return copy.deepcopy(loaded[rel])


def without_outcomes(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.drop(columns=["max_rss", "max_rss_gb", "max_cache", "memory_fail_count", "ts_status"])


# ---------------------------------------------------------------------- catalog and data
def test_catalog_labels_and_order(artifacts):
    entries = discover_models(artifacts)
    assert [e.label for e in entries] == [
        "Classification",
        "Quantile Ensemble: Balanced Approach",
        "Quantile Ensemble: Small Memory Waste",
        "Overall champion",
        "lightgbm_regression",
    ]
    assert [e.kind for e in entries][:3] == ["classification", "quantile_ensemble", "quantile_ensemble"]
    assert all(e.path.is_file() for e in entries)
    assert discover_models(artifacts / "nowhere") == []


def test_resolve_artifacts_dir(monkeypatch, tmp_path):
    monkeypatch.setenv(ARTIFACTS_ENV, str(tmp_path / "env"))
    assert resolve_artifacts_dir("given") == Path("given")
    assert resolve_artifacts_dir("") == tmp_path / "env"
    monkeypatch.delenv(ARTIFACTS_ENV)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "artifacts").mkdir()
    assert resolve_artifacts_dir(None) == Path("artifacts")


def test_simulation_jobs_are_the_time_holdout(artifacts, holdout):
    full = load_simulation_jobs(artifacts / "data" / "default_telemetry.csv", artifacts, holdout_only=False)
    assert len(full) == 3000 and len(holdout) == 300
    assert holdout["time"].is_monotonic_increasing
    assert holdout["time"].min() >= full["time"].iloc[-300]


# ---------------------------------------------------------------------- replay
def test_step_predicts_before_and_observes_after(holdout, loaded):
    sim = ReplaySimulation(holdout)
    sim.set_model("qe", fresh(loaded, QE))
    result = sim.step(3)
    assert (result.start, result.stop, sim.position) == (0, 3, 3)
    # The scheduler by hand: predict the row without outcomes, then observe the full row.
    model = fresh(loaded, QE)
    expected = []
    for i in range(3):
        expected.append(model.predict(without_outcomes(holdout.iloc[i : i + 1]))[0])
        model.observe(holdout.iloc[i : i + 1])
    np.testing.assert_allclose(result.allocated_gb, expected, rtol=1e-9)
    np.testing.assert_allclose(result.peak_gb, holdout["max_rss_gb"].iloc[:3])
    np.testing.assert_allclose(result.request_gb, holdout["memreq_gb"].iloc[:3])


def test_a_job_never_sees_its_own_peak(holdout, loaded):
    changed = holdout.copy()
    changed.loc[10, ["max_rss", "max_rss_gb"]] *= 50.0
    runs = []
    for jobs in (holdout, changed):
        sim = ReplaySimulation(jobs)
        sim.set_model("lgbm", fresh(loaded, LGBM))
        runs.append(sim.run(40).allocated_gb)
    np.testing.assert_array_equal(runs[0][:11], runs[1][:11])  # up to and including job 10
    assert not np.allclose(runs[0][11:], runs[1][11:])  # later jobs saw the changed peak


def test_batch_size_does_not_change_allocations(holdout, loaded):
    one = ReplaySimulation(holdout, threads=None)  # the libraries' own thread settings
    one.set_model("clf", fresh(loaded, CLASSIFICATION))
    for _ in range(25):
        one.step(1)
    batched = ReplaySimulation(holdout)
    batched.set_model("clf", fresh(loaded, CLASSIFICATION))
    batched.step(10)
    batched.step(15)
    np.testing.assert_allclose(batched.history()["allocated_gb"], one.history()["allocated_gb"])


@pytest.mark.parametrize("rel", [CLASSIFICATION, QE, LGBM])
def test_causal_batch_run_equals_job_by_job_steps(holdout, loaded, rel):
    steps = ReplaySimulation(holdout.iloc[:30])
    steps.set_model("m", fresh(loaded, rel))
    steps.step(10)
    batch = ReplaySimulation(holdout.iloc[:30])
    batch.set_model("m", fresh(loaded, rel))
    batch.step(10)
    np.testing.assert_allclose(batch.run(causal_batch=True).allocated_gb, steps.run().allocated_gb)
    assert batch.done and batch.metrics() == steps.metrics()
    # Both models observed every job: they size the next job alike.
    following = without_outcomes(holdout.iloc[30:31])
    assert batch.model.predict(following)[0] == pytest.approx(steps.model.predict(following)[0])


def test_counters_are_allocation_metrics_of_the_replayed_jobs(holdout, loaded):
    sim = ReplaySimulation(holdout, penalty=7.0)
    assert sim.metrics() == {"n_jobs": 0}
    sim.set_model("qe", fresh(loaded, QE))
    sim.step(57)
    m = sim.metrics()
    alloc = sim.history()["allocated_gb"].to_numpy()
    peak = holdout["max_rss_gb"].to_numpy()[:57]
    request = holdout["memreq_gb"].to_numpy()[:57]
    expected = allocation_metrics(alloc, peak, penalty=7.0)
    for key, value in expected.items():
        assert m[key] == pytest.approx(value), key
    assert m["saved_gb"] == pytest.approx(request.sum() - alloc.sum())
    assert m["saved_pct"] == pytest.approx(100 * (request.sum() - alloc.sum()) / request.sum())
    assert m["request_business_score"] == pytest.approx(
        allocation_metrics(request, peak, penalty=7.0)["business_score"]
    )


def test_switching_models_keeps_position_and_catches_up(holdout, loaded):
    sim = ReplaySimulation(holdout)
    sim.set_model("qe", fresh(loaded, QE))
    sim.step(20)
    sim.set_model("lgbm", fresh(loaded, LGBM))
    assert sim.position == 20
    got = sim.step(1).allocated_gb[0]
    # A fresh LightGBM model brought up to date by hand on the 20 replayed jobs.
    ref = fresh(loaded, LGBM)
    ref.observe(holdout.iloc[:20])
    assert got == pytest.approx(ref.predict(without_outcomes(holdout.iloc[20:21]))[0], rel=1e-9)
    # Back to the QE model: it catches up on jobs 20 (replayed by LightGBM) before job 21.
    sim.set_model("qe")
    got_qe = sim.step(1).allocated_gb[0]
    ref_qe = fresh(loaded, QE)
    ref_qe.observe(holdout.iloc[:21])
    assert got_qe == pytest.approx(ref_qe.predict(without_outcomes(holdout.iloc[21:22]))[0], rel=1e-9)
    assert sim.history()["model"].tolist() == ["qe"] * 20 + ["lgbm", "qe"]
    with pytest.raises(KeyError, match="no model named"):
        sim.set_model("unknown")


def test_reset_replays_the_same_allocations(holdout, loaded):
    sim = ReplaySimulation(holdout)
    sim.set_model("clf", fresh(loaded, CLASSIFICATION))
    first = sim.step(30).allocated_gb
    sim.reset()
    assert sim.position == 0 and sim.metrics() == {"n_jobs": 0}
    np.testing.assert_allclose(sim.step(30).allocated_gb, first)


@pytest.mark.parametrize(
    ("rel", "keys"),
    [
        (CLASSIFICATION, {"predicted_bin", "bin_lower_gb", "bin_upper_gb", "confidence"}),
        (QE, {"alpha", "safety"}),
    ],
)
def test_explained_steps_give_the_same_allocations(holdout, loaded, rel, keys):
    plain = ReplaySimulation(holdout.iloc[:12])
    plain.set_model("m", fresh(loaded, rel))
    explained = ReplaySimulation(holdout.iloc[:12])
    explained.set_model("m", fresh(loaded, rel))
    for _ in range(4):
        result = explained.step(3, explain=True)
        assert keys <= set(result.explanation)
        assert result.explanation["allocation_gb"] == result.allocated_gb[-1]
    np.testing.assert_allclose(explained.history()["allocated_gb"], plain.run().allocated_gb)
    assert explained.done and explained.step().n_jobs == 0


def test_replay_rejects_bad_input(holdout, loaded):
    with pytest.raises(ValueError, match="non-empty"):
        ReplaySimulation(holdout.iloc[:0])
    with pytest.raises(ValueError, match="max_rss"):
        ReplaySimulation(holdout.drop(columns=["max_rss", "max_rss_gb"]))
    sim = ReplaySimulation(holdout)
    with pytest.raises(RuntimeError, match="no model selected"):
        sim.step()
    with pytest.raises(TypeError, match="predict and observe"):
        sim.set_model("x", object())


# ---------------------------------------------------------------------- widget layer
@pytest.fixture
def app(artifacts):
    from resource_prediction.simulation import SimulationApp

    return SimulationApp(artifacts, window=50)


def _counter(app, name: str) -> str:
    match = re.search(rf"class='rp-{name}'>([^<]*)<", app.counters.value)
    assert match, app.counters.value
    return match.group(1)


def test_app_starts_on_the_first_model(app):
    assert app.model_selector.options[0] == ("Classification", CLASSIFICATION)
    assert app.sim.model_name == CLASSIFICATION and app.error is None
    assert _counter(app, "jobs") == "0"
    assert "Model metadata" in app.panel.value
    assert len(app.figure.data) == 4 and len(app.figure.data[0].x) == 0


def test_app_step_button_updates_counters_chart_and_panel(app, holdout):
    app.batch_slider.value = 4
    app.step_button.click()
    app.step_button.click()
    assert app.sim.position == 8
    m = allocation_metrics(app.sim.history()["allocated_gb"], holdout["max_rss_gb"].iloc[:8])
    assert _counter(app, "jobs") == "8"
    assert _counter(app, "score") == f"{m['business_score']:.1f}"
    assert _counter(app, "under") == f"{m['under_pct']:.2f} %"
    assert _counter(app, "over") == f"{m['total_over_pct']:.1f} %"
    assert len(app.figure.data[1].y) == 8
    np.testing.assert_allclose(app.figure.data[2].y, holdout["max_rss_gb"].iloc[:8])
    assert "Last job" in app.panel.value and "job <b>8</b> of 300" in app.status.value


def test_app_chart_keeps_a_window(app):
    app.batch_slider.value = 30
    for _ in range(3):
        app.step()
    assert app.sim.position == 90
    assert len(app.figure.data[1].x) == 50  # window=50: the latest jobs only
    np.testing.assert_allclose(app.figure.data[1].y, app.sim.history()["allocated_gb"].iloc[-50:])


def test_app_play_runs_to_the_end(artifacts):
    from resource_prediction.simulation import SimulationApp

    app = SimulationApp(artifacts, window=50, test_fraction=0.05)  # the latest 150 jobs
    holdout = app.sim.jobs
    assert len(holdout) == 150
    app.delay_slider.value = 0.0
    app.batch_slider.value = 40

    async def play():
        task = app.play()
        assert app.playing
        await task

    asyncio.run(play())
    assert app.sim.done and not app.playing and app.sim.position == len(holdout)
    m = allocation_metrics(app.sim.history()["allocated_gb"], holdout["max_rss_gb"])
    assert _counter(app, "score") == f"{m['business_score']:.1f}"
    assert "finished" in app.status.value
    # Play redraws the chart at most every redraw_interval; the end draws the last window.
    np.testing.assert_allclose(app.figure.data[1].y, app.sim.history()["allocated_gb"].iloc[-50:])
    assert app.play() is None  # nothing left to play


def test_app_delay_and_pause(app):
    app.delay_slider.value = 0.5
    app.batch_slider.value = 3

    async def play_then_pause():
        task = app.play()
        await asyncio.sleep(0.05)  # the first step runs; the task then sleeps the delay
        assert app.sim.position == 3
        app.pause_button.click()
        await task

    asyncio.run(play_then_pause())
    assert app.sim.position == 3 and not app.playing
    assert app.play() is None  # no running loop here: play reports it in the panel
    assert "running event loop" in app.panel.value


def test_app_switch_model_keeps_position(app):
    app.batch_slider.value = 10
    app.step()
    app.model_selector.value = LGBM
    assert app.sim.model_name == LGBM and app.sim.position == 10 and app.error is None
    assert "lightgbm_regression" in app.panel.value
    app.step()
    assert app.sim.history()["model"].tolist() == [CLASSIFICATION] * 10 + [LGBM] * 10
    assert _counter(app, "jobs") == "20"


def test_app_shows_a_broken_artifact_as_an_error(app):
    app.step()
    app.model_selector.value = BROKEN
    assert app.error is not None and "qe_small_waste.pkl" in app.error
    assert "rp-error" in app.panel.value and "Error" in app.panel.value
    assert app.step() is None and app.sim.position == 1  # no model: nothing replayed
    app.model_selector.value = QE
    assert app.error is None and app.step() is not None and app.sim.position == 2


def test_app_reset_and_load_data(app, artifacts, tmp_path):
    app.step()
    app.reset_button.click()
    assert app.sim.position == 0 and _counter(app, "jobs") == "0" and len(app.figure.data[1].x) == 0
    assert not app.load_data(tmp_path / "missing.csv")
    assert "cannot load the data" in app.data_status.value and app.sim.n_jobs == 300
    small = generate_telemetry(500, seed=3)
    save_telemetry(small, tmp_path / "other.csv")
    app.holdout_only.value = False
    assert app.load_data(tmp_path / "other.csv")
    assert app.sim.n_jobs == 500 and app.sim.model_name == CLASSIFICATION
    app.load_button.click()  # the text box now holds the path
    assert app.sim.n_jobs == 500 and app.step() is not None


def test_app_without_models_says_so(tmp_path):
    from resource_prediction.simulation import SimulationApp

    save_telemetry(generate_telemetry(400, seed=1), tmp_path / "data" / "default_telemetry.csv")
    app = SimulationApp(tmp_path)
    assert app.entries == [] and "No trained models" in app.status.value
    assert app.step() is None and app.play() is None


# ---------------------------------------------------------------------- static animation
def test_replay_animation_frames_match_the_replay(holdout, loaded):
    models = {"QE": fresh(loaded, QE), "Classification": fresh(loaded, CLASSIFICATION)}
    fig = replay_animation(models, holdout, n_jobs=50, jobs_per_frame=20, window=20)
    assert [f.name for f in fig.frames] == ["20", "40", "50"]
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["Play", "Pause"]
    last = fig.frames[-1].data
    sim = ReplaySimulation(holdout.iloc[:50])
    sim.set_model("QE", fresh(loaded, QE))
    alloc = sim.run().allocated_gb
    qe_trace = next(t for t in last if t.name.startswith("QE: score"))
    np.testing.assert_allclose(qe_trace.y, alloc[-20:])  # the window: the latest 20 jobs
    score = allocation_metrics(alloc, holdout["max_rss_gb"].iloc[:50])["business_score"]
    assert f"score {score:.1f}" in qe_trace.name


def test_animation_for_artifacts(artifacts, tmp_path):
    assert animation_for_artifacts(tmp_path) is None
    fig = animation_for_artifacts(artifacts, n_jobs=30, jobs_per_frame=10)
    names = [t.name for t in fig.frames[-1].data if t.showlegend is not False]
    # The champion, the configured request with its running score, and the exported variants that
    # load (the damaged one is left out).
    assert any(n.startswith("Champion") and ": score" in n for n in names)
    assert any(n.startswith("Configured request: score") for n in names)
    assert any(n.startswith("Quantile Ensemble: Balanced Approach: score") for n in names)
    assert not any("Small Memory Waste" in n or n.startswith("Classification") for n in names)


def test_replay_animation_draws_a_window_of_the_latest_jobs(holdout, loaded):
    fig = replay_animation({"QE": fresh(loaded, QE)}, holdout, n_jobs=60, jobs_per_frame=20, window=25)
    assert [f.name for f in fig.frames] == ["25", "45", "60"]  # the first frame fills the window
    last = fig.frames[-1]
    peaks = next(t for t in last.data if t.name == "Actual peak")
    assert list(peaks.x) == list(range(36, 61))  # jobs 36..60: the latest 25
    assert list(last.layout.xaxis.range) == [35.5, 60.5]
    qe = next(t for t in last.data if t.name.startswith("QE: score"))
    sim = ReplaySimulation(holdout.iloc[:60])
    sim.set_model("QE", fresh(loaded, QE))
    alloc = sim.run().allocated_gb
    score = allocation_metrics(alloc, holdout["max_rss_gb"].iloc[:60])["business_score"]
    assert f"score {score:.1f}" in qe.name  # the legend scores every job so far, not the window
