"""Holdout evaluation end to end: tiny searches, the holdout table, champions, Pareto variants, files."""

from __future__ import annotations

import json
import shutil

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go
import pytest
from conftest import write_nextflow_trace
from lightgbm import LGBMRegressor

from resource_prediction.cli import main
from resource_prediction.data import load_telemetry, save_telemetry
from resource_prediction.deployable import DeployableModel
from resource_prediction.features.raw import target_gb
from resource_prediction.metrics import ALLOCATION_CATEGORIES, allocation_metrics
from resource_prediction.models import (
    BasePredictor,
    HistoryBaseline,
    QuantileEnsembleRegressor,
    suggest_preprocessor_params,
)
from resource_prediction.paths import ArtifactPaths
from resource_prediction.plots.evaluation import (
    allocation_category_chart,
    comparison_chart,
    pareto_chart,
    predicted_vs_actual_chart,
)
from resource_prediction.registry import (
    ModelFamily,
    families,
    get_family,
    register_family,
    unregister_family,
)
from resource_prediction.synthetic import generate_telemetry, oracle_allocation
from resource_prediction.training.evaluation import (
    UNCONFIRMED,
    Trainer,
    is_quantile_ensemble,
    warn_if_a_baseline_wins,
)
from resource_prediction.training.pareto import VARIANTS, choose_variants, pareto_mask

optuna.logging.set_verbosity(optuna.logging.WARNING)

LIGHT_MEMBERS = (
    ("lgbm", LGBMRegressor(n_estimators=40, num_leaves=15, learning_rate=0.1, n_jobs=1, verbose=-1)),
)


class LightQuantileEnsemble(QuantileEnsembleRegressor):
    """The quantile ensemble with one small LightGBM member: the registry's ensemble, test-sized."""

    def __init__(self, members=LIGHT_MEMBERS, alpha=0.95, safety=1.0, log_target=True, random_state=None):
        super().__init__(
            members=members, alpha=alpha, safety=safety, log_target=log_target, random_state=random_state
        )


def _light_space(trial) -> dict:
    return {
        **suggest_preprocessor_params(trial),
        "alpha": trial.suggest_float("alpha", 0.85, 0.98),
        "safety": trial.suggest_float("safety", 1.0, 1.3),
    }


class FailingRegressor(BasePredictor):
    def __init__(self, level: float = 1.0):
        self.level = level

    def fit(self, X, y):
        raise RuntimeError("deliberate failure")

    def _predict(self, Xa):  # pragma: no cover - never fitted
        return np.zeros(len(Xa))


@pytest.fixture(scope="module")
def light_qe():
    family = register_family(ModelFamily(
        "qe_light", "regression", LightQuantileEnsemble, _light_space, "small quantile ensemble (tests)"
    ))
    yield family.name
    unregister_family(family.name)


@pytest.fixture(scope="module")
def jobs() -> pd.DataFrame:
    return generate_telemetry(3000, seed=2, with_truth=True)


@pytest.fixture(scope="module")
def data_file(jobs, tmp_path_factory):
    return save_telemetry(jobs, tmp_path_factory.mktemp("data") / "jobs.csv")


@pytest.fixture(scope="module")
def regression_run(jobs, data_file, light_qe, tmp_path_factory):
    """A tiny regression search (CLI) and evaluation (Trainer) with charts."""
    root = tmp_path_factory.mktemp("regression")
    rc = main(["search", "--data", str(data_file), "--artifacts-dir", str(root), "--task-type",
               "regression", "--model-family", "lightgbm_regression", "--model-family", light_qe,
               "--n-trials", "2", "--no-progress-bar"])
    assert rc == 0
    paths = ArtifactPaths(root)
    trainer = Trainer(jobs, paths=paths, n_boot=200, pareto_n_alphas=3)
    result = trainer.run(families=["lightgbm_regression", light_qe], task_type="regression", charts=True)
    return paths, trainer, result


@pytest.fixture(scope="module")
def classification_run(data_file, tmp_path_factory):
    """A tiny classification search and evaluation, both through the command line."""
    root = tmp_path_factory.mktemp("classification")
    common = ["--data", str(data_file), "--artifacts-dir", str(root), "--task-type", "classification",
              "--model-family", "lr_classification"]
    assert main(["search", *common, "--n-trials", "2", "--no-progress-bar"]) == 0
    assert main(["evaluate", *common]) == 0
    return ArtifactPaths(root)


def test_regression_run_writes_every_artifact(regression_run, light_qe):
    paths, _, result = regression_run
    models = paths.models
    for name in ["lightgbm_regression", light_qe, *families("baseline"), "champion"]:
        assert (models / f"{name}.pkl").is_file(), name
    for variant in VARIANTS:
        assert (models / "app" / "qe" / f"{variant}.pkl").is_file()
    reports = paths.reports
    for name in ("holdout_results.csv", "holdout_results.json", "holdout_predictions.parquet",
                 "search_summary.csv", "pareto.csv", "champions.json",
                 "holdout_comparison.html", "allocation_categories.html", "pareto_frontier.html"):
        assert (reports / name).is_file(), name
    if shutil.which("chromium"):
        assert (reports / "holdout_comparison.png").stat().st_size > 1000
    assert {str(p) for p in result.files} >= {str(reports / "holdout_results.csv")}


def test_holdout_table_has_models_baselines_and_oracle(regression_run, jobs, light_qe):
    paths, trainer, result = regression_run
    table = pd.read_csv(paths.reports / "holdout_results.csv").set_index("family")
    assert set(table.index) == {"lightgbm_regression", light_qe, *families("baseline"), "oracle"}
    assert table.loc["oracle", "task_type"] == "oracle"
    assert (table["ci_low"] <= table["business_score"]).all()
    assert (table["business_score"] <= table["ci_high"]).all()
    categories = [f"{label} %" for label, _, _ in ALLOCATION_CATEGORIES]
    np.testing.assert_allclose(table[categories].sum(axis=1), 100.0)
    assert (table.drop(index="oracle")["predict_ms_per_job"] > 0).all()
    assert set(table.loc[["lightgbm_regression", light_qe], "param_source"]) <= {"study", UNCONFIRMED}
    assert set(table.loc[list(families("baseline")), "param_source"]) == {"defaults"}
    assert list(table["business_score"]) == sorted(table["business_score"])
    # the oracle row is the oracle's allocation scored on the same holdout
    oracle = allocation_metrics(oracle_allocation(trainer.holdout_raw), trainer.y_holdout)
    assert table.loc["oracle", "business_score"] == pytest.approx(oracle["business_score"])
    records = json.loads((paths.reports / "holdout_results.json").read_text())
    assert {r["family"] for r in records} == set(table.index)
    summary = pd.read_csv(paths.reports / "search_summary.csv").set_index("family")
    for name in ("lightgbm_regression", light_qe):
        row = summary.loc[name]
        assert row["n_trials"] == 2 == row["n_complete"] + row["n_pruned"] + row["n_failed"]
        confirmed = table.loc[name, "param_source"] == "study"
        assert confirmed is (trainer.param_checks.get(name, 1.0) >= trainer.confidence)
        stored = json.loads(row["best_params"]) if confirmed else {}
        assert json.loads(table.loc[name, "params"]) == stored


def test_champion_is_the_best_validated_model_refitted_on_all_rows(regression_run, jobs):
    paths, trainer, result = regression_run
    table = result.holdout
    real = table[table["task_type"] == "regression"]
    best = real.loc[real["val_business_score"].idxmin(), "family"]
    assert result.champions == {"regression": best, "overall": best}
    champion = DeployableModel.load(paths.models / "champion.pkl")
    info = champion.get_model_info()
    assert info["family"] == best
    holdout_score = real.set_index("family").loc[best, "business_score"]
    assert info["holdout_metrics"]["business_score"] == pytest.approx(holdout_score)
    # exported models are refitted on every row; the metadata says so
    assert info["training"]["n_rows"] == len(jobs) == info["refit"]["n_rows"]
    assert info["training"]["time_end"] == pd.Timestamp(jobs["time"].max()).isoformat()
    assert info["validation_metrics"]["business_score"] == pytest.approx(
        real.set_index("family").loc[best, "val_business_score"]
    )
    new_jobs = trainer.holdout_raw.drop(columns=["max_rss", "max_rss_gb"])
    assert np.all(champion.predict(new_jobs) > 0)


def test_champions_ignore_the_holdout_scores():
    """The validation window chooses; a family that only wins on the holdout is not champion."""
    table = pd.DataFrame({
        "family": ["a", "b", "c", "configured_request"],
        "task_type": ["regression", "regression", "classification", "baseline"],
        "business_score": [10.0, 90.0, 5.0, 1.0],
        "val_business_score": [80.0, 20.0, 50.0, 1.0],
    })
    assert Trainer.champions(table) == {"regression": "b", "classification": "c", "overall": "b"}


def test_small_data_validates_on_up_to_three_windows(jobs):
    """Below min_val_jobs validated jobs, consecutive earlier windows join the latest one."""
    small = Trainer(jobs, storage="memory", min_val_jobs=10_000)
    windows = small.validation_windows()
    assert len(windows) == 3
    for fit_raw, val_raw in windows:
        assert len(val_raw) == len(small.val_raw)
        assert fit_raw["time"].max() <= val_raw["time"].min()
        assert val_raw["time"].max() <= small.holdout_raw["time"].min()
    assert windows[0][1].equals(small.val_raw)
    assert windows[1][1]["time"].max() <= windows[0][1]["time"].min()
    assert len(Trainer(jobs, storage="memory", min_val_jobs=1).validation_windows()) == 1


def test_validation_window_lies_inside_the_training_period(regression_run, jobs):
    _, trainer, _ = regression_run
    assert trainer.val_raw["time"].min() >= trainer.fit_raw["time"].max()
    assert trainer.val_raw["time"].max() <= trainer.holdout_raw["time"].min()
    assert len(trainer.fit_raw) + len(trainer.val_raw) == len(trainer.train_raw)
    assert not set(trainer.val_raw["atom_id"]) & set(trainer.holdout_raw["atom_id"])


def test_pareto_variants_load_and_order_as_named(regression_run, light_qe):
    paths, _, result = regression_run
    points = pd.read_csv(paths.reports / "pareto.csv", keep_default_na=False)
    assert set(points["family"]) == {light_qe}
    assert len(points) == 3 * 7  # 3 alphas x 7 safety factors
    np.testing.assert_array_equal(
        points["on_frontier"].astype(bool), pareto_mask(points["under_pct"], points["total_over_pct"])
    )
    marked = {v for cell in points["variant"] if cell for v in cell.split(",")}
    assert marked == set(VARIANTS)
    models = {v: DeployableModel.load(paths.models / "app" / "qe" / f"{v}.pkl") for v in VARIANTS}
    for source in ("validation_metrics", "holdout_metrics"):
        m = [models[v].get_model_info()[source] for v in VARIANTS]  # tiny_under, balanced, small_waste
        unders = [x["under_pct"] for x in m]
        overs = [x["total_over_pct"] for x in m]
        assert unders == sorted(unders), (source, unders)
        assert overs == sorted(overs, reverse=True), (source, overs)
    balanced = models["qe_balanced"].get_model_info()
    assert balanced["variant"] == "qe_balanced"
    assert {"alpha", "safety"} <= set(balanced["params"])


def test_choose_variants_follow_their_rules():
    points = pd.DataFrame({
        "under_pct": [0.2, 0.5, 1.0, 2.0, 3.0, 9.0, 1.5],
        "total_over_pct": [300.0, 110.0, 90.0, 60.0, 56.0, 30.0, 100.0],
    })
    points["business_score"] = 5 * points["under_pct"] + points["total_over_pct"]
    assert pareto_mask(points["under_pct"], points["total_over_pct"]).tolist() == [True] * 6 + [False]
    chosen = choose_variants(points)
    assert chosen["qe_balanced"] == points["business_score"].idxmin() == 3
    assert chosen["qe_tiny_under_alloc"] == 1  # 0.2 % under costs 300 % over: beyond 2 x 60 %
    assert chosen["qe_small_waste"] == 4  # 9 % under is beyond 2 x 2 %


def test_classification_run_exports_the_best_classifier(classification_run):
    paths = classification_run
    table = pd.read_csv(paths.reports / "holdout_results.csv").set_index("family")
    assert table.loc["lr_classification", "task_type"] == "classification"
    assert "oracle" in table.index and not (paths.reports / "pareto.csv").exists()
    exported = DeployableModel.load(paths.models / "app" / "classification" / "lr_classification.pkl")
    assert exported.get_model_info()["task_type"] == "classification"
    champions = json.loads((paths.reports / "champions.json").read_text())
    assert champions["champions"] == {"classification": "lr_classification", "overall": "lr_classification"}
    assert champions["provenance"]["n_holdout"] == 300


def test_a_family_that_fails_in_evaluation_gives_an_error_row(jobs):
    family = register_family(ModelFamily("fails_in_fit", "regression", FailingRegressor,
                                         lambda t: {}, "fails (tests)"))
    try:
        trainer = Trainer(jobs, storage="memory", n_boot=50)
        row, model, alloc = trainer.evaluate_family(family.name)
    finally:
        unregister_family(family.name)
    assert model is None and alloc is None
    assert "deliberate failure" in row["error"] and np.isnan(row["business_score"])


def test_the_request_baseline_does_not_apply_to_data_without_requests(tmp_path, caplog):
    """A trace whose processes set no memory directive has no configured request to compare with:
    that baseline's row says so (a warning, no traceback), and ``max_seen`` still runs."""
    trace = load_telemetry(write_nextflow_trace(tmp_path / "trace.csv", n=120))
    trace["memreq"] = trace["memreq_gb"] = np.nan
    trainer = Trainer(trace, storage="memory", n_boot=50)
    with caplog.at_level("WARNING"):
        row, model, _ = trainer.evaluate_family("configured_request")
    assert model is None and row["error"].startswith("not applicable: feature 'memreq_gb' not found")
    assert [r.levelname for r in caplog.records if "configured_request" in r.getMessage()] == ["WARNING"]
    row, model, alloc = trainer.evaluate_family("max_seen")
    assert model is not None and row["error"] == "" and np.isfinite(alloc).all()


def _margin_space(trial) -> dict:
    return {"margin": trial.suggest_float("margin", 0.5, 2.0)}


@pytest.mark.parametrize("default, best, kept", [(1.5, 0.5, "defaults"), (0.5, 1.5, "study")])
def test_a_study_replaces_the_defaults_only_where_it_beats_them_on_validation(jobs, default, best, kept):
    """The study's best parameters (here the margin over each group's largest peak: 0.5 fails
    nearly every job) are used only if they beat the family's defaults on the validation jobs
    with confidence; else the defaults stay, and the table says so."""
    family = register_family(ModelFamily("margin_test", "regression", HistoryBaseline(margin=default),
                                         _margin_space, "max seen x margin (tests)"))
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name=f"resource-prediction/{family.name}")
    study.add_trial(optuna.trial.create_trial(
        params={"margin": best}, distributions={"margin": optuna.distributions.FloatDistribution(0.5, 2.0)},
        value=1.0))
    try:
        trainer = Trainer(jobs, storage=storage, n_boot=50)
        row, model, _ = trainer.evaluate_family(family.name)
    finally:
        unregister_family(family.name)
    confirmed = kept == "study"
    assert row["param_source"] == ("study" if confirmed else UNCONFIRMED)
    assert trainer.param_checks[family.name] == (1.0 if confirmed else 0.0)
    assert model.model.margin == (best if confirmed else default)
    assert json.loads(row["params"]) == ({"margin": best} if confirmed else {})


def test_selection_and_capability_come_from_the_registry(light_qe):
    chosen = Trainer.select_families(["lightgbm_regression"], "regression")
    assert chosen == ["lightgbm_regression", *families("baseline")]
    every = Trainer.select_families(["lightgbm_regression"], "regression", evaluate_all_archs=True)
    assert set(every) == {*families("regression"), *families("baseline")}
    assert is_quantile_ensemble(get_family(light_qe))
    assert not is_quantile_ensemble(get_family("lightgbm_regression"))


def test_figures_are_built_from_the_report_frames(regression_run, light_qe):
    paths, _, result = regression_run
    holdout = pd.read_csv(paths.reports / "holdout_results.csv")
    fig = comparison_chart(holdout)
    assert isinstance(fig, go.Figure)
    assert sum(len(t.y) for t in fig.data) == len(holdout)
    assert all(t.error_x.array is not None for t in fig.data)
    stacked = allocation_category_chart(holdout)
    assert [t.name for t in stacked.data] == [label for label, _, _ in ALLOCATION_CATEGORIES]
    preds = pd.read_parquet(paths.reports / "holdout_predictions.parquet")
    scatter = predicted_vs_actual_chart(preds, families=["oracle", light_qe], max_points=100)
    assert scatter.layout.xaxis.type == "log" and len(scatter.data) == 3
    assert all(len(t.x) <= 100 for t in scatter.data[:2])
    pareto = pareto_chart(pd.read_csv(paths.reports / "pareto.csv", keep_default_na=False))
    assert {t.name for t in pareto.data} >= set(VARIANTS)


@pytest.mark.parametrize(("baseline_score", "warned"), [(90.0, True), (130.0, False)])
def test_a_baseline_that_beats_the_champion_is_reported(baseline_score, warned, caplog):
    holdout = pd.DataFrame({
        "family": ["lightgbm_regression", "group_percentile", "configured_request"],
        "task_type": ["regression", "baseline", "baseline"],
        "business_score": [120.0, baseline_score, 200.0],
    })
    with caplog.at_level("WARNING", logger="resource_prediction.training.evaluation"):
        warn_if_a_baseline_wins(holdout, {"regression": "lightgbm_regression", "overall": "lightgbm_regression"})
    assert ("group_percentile" in caplog.text and "beats the overall champion" in caplog.text) is warned


def test_the_preferred_family_stays_champion_unless_beaten_with_confidence(jobs, tmp_path):
    """A challenger with a lower validation score replaces the preferred family only when it
    scores lower in at least ``confidence`` of the paired bootstrap resamples; the decision is
    recorded."""
    trainer = Trainer(jobs, paths=ArtifactPaths(tmp_path), storage="memory", n_boot=10)
    y = target_gb(trainer.val_raw)
    rng = np.random.default_rng(0)
    trainer.validation_peaks = y
    trainer.validation_allocations = {
        "cost_aware_regression": 1.5 * y,
        "clearly_better": 1.2 * y,  # 20 % waste against 50 %, no failures
        "barely_better": np.where(rng.random(y.size) < 0.05, 0.9 * y, 1.22 * y),
    }
    assert trainer.choose_overall("clearly_better") == "clearly_better"
    assert trainer.selection["win_rate"] == 1.0
    barely = allocation_metrics(trainer.validation_allocations["barely_better"], y)["business_score"]
    preferred = allocation_metrics(1.5 * y, y)["business_score"]
    assert barely < preferred
    assert trainer.choose_overall("barely_better") == "cost_aware_regression"
    assert 0.0 < trainer.selection["win_rate"] < trainer.confidence
    assert "barely_better scored below cost_aware_regression" in trainer.selection["rule"]
    # the bootstrap resamples task types: with one type, every resample is the whole window
    trainer.validation_types = np.full(y.size, "one_type")
    assert trainer.choose_overall("barely_better") == "barely_better"
    assert trainer.selection["win_rate"] == 1.0
    trainer.validation_types = None
    trainer.preferred = None
    assert trainer.choose_overall("barely_better") == "barely_better"
    assert trainer.selection["rule"] == "lowest validation score"


def test_champions_json_records_the_selection(regression_run):
    paths, trainer, result = regression_run
    record = json.loads((paths.reports / "champions.json").read_text())
    assert record["selection"]["overall"] == result.champions["overall"]
    assert record["provenance"]["preferred_family"] == "cost_aware_regression"
