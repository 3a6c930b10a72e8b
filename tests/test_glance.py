"""The book's helpers: results at a glance from reports, page paths, search and holdout tables,
the notebook set-up and the book copy of an executed notebook."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from resource_prediction.glance import (
    glance_markdown,
    glance_table,
    read_reports,
    write_glance_page,
)
from resource_prediction.paths import ArtifactPaths
from resource_prediction.pipeline import PROJECT_ROOT, write_book_copy


def _row(family, task, score, under, over, low=None, high=None, **extra):
    return {"family": family, "task_type": task, "business_score": score, "under_pct": under,
            "total_over_pct": over, "ci_low": low, "ci_high": high, "error": "", **extra}


def write_reports(root: Path, champion: str = "qe_regression", extra_column: bool = True) -> ArtifactPaths:
    paths = ArtifactPaths(root).ensure()
    rows = [
        _row("qe_regression", "regression", 61.0, 5.6, 33.0, 55.2, 66.8),
        _row("cost_aware_regression", "regression", 64.0, 2.0, 54.0, 58.0, 70.0),
        _row("configured_request", "baseline", 186.6, 2.2, 175.6, 170.1, 205.3),
        _row("max_seen", "baseline", 120.0, 3.0, 105.0, 110.0, 130.0),
        _row("group_percentile", "baseline", 177.8, 25.0, 52.8, 155.6, 199.6),
        _row("oracle", "oracle", 50.0, 3.0, 35.0, 45.0, 55.0),
        _row("lr_classification", "classification", np.nan, np.nan, np.nan, error="boom"),
    ]
    if extra_column:
        rows = [r | {"a_new_column": 1} for r in rows]
    pd.DataFrame(rows).to_json(paths.reports / "holdout_results.json", orient="records")
    (paths.reports / "champions.json").write_text(json.dumps({
        "champions": {"overall": champion, "regression": champion},
        "provenance": {"n_holdout": 5000, "holdout_start": "2024-11-25 20:50:10+00:00", "penalty": 5.0},
    }))
    pd.DataFrame([
        {"variant": "", "holdout_business_score": np.nan, "holdout_under_pct": np.nan,
         "holdout_total_over_pct": np.nan},
        {"variant": "qe_balanced", "holdout_business_score": 62.5, "holdout_under_pct": 4.0,
         "holdout_total_over_pct": 42.5},
        {"variant": "qe_tiny_under_alloc", "holdout_business_score": 75.0, "holdout_under_pct": 1.5,
         "holdout_total_over_pct": 67.5},
    ]).to_csv(paths.reports / "pareto.csv", index=False)
    pd.DataFrame([
        {"family": "cost_aware_regression", "penalty": 50.0, "variant": "cost_aware_safe",
         "holdout_business_score": 70.0, "holdout_under_pct": 2.0, "holdout_total_over_pct": 60.0},
        {"family": "cost_aware_regression", "penalty": 5.0, "variant": "",
         "holdout_business_score": np.nan, "holdout_under_pct": np.nan, "holdout_total_over_pct": np.nan},
    ]).to_csv(paths.reports / "frontier.csv", index=False)
    return paths


def test_glance_table_reads_every_figure_from_the_reports(tmp_path):
    paths = write_reports(tmp_path / "artifacts")
    table = glance_table(*read_reports(paths)).set_index("role")
    assert table.loc["champion", "model"] == "qe_regression"
    assert table.loc["champion", "business score"] == 61.0
    assert table.loc["champion", "95 % interval"] == "55.2 to 66.8"
    assert table.loc["configured request (today)", "under-allocated jobs %"] == 2.2
    assert table.loc["best other baseline", "model"] == "max_seen"  # the best baseline that is not today's
    assert table.loc["oracle (best possible)", "business score"] == 50.0
    variants = table.loc["exported variant"]
    assert list(variants["model"]) == ["qe_balanced", "qe_tiny_under_alloc", "cost_aware_safe"]


def test_glance_says_when_the_champion_fails_more_jobs_than_today(tmp_path):
    text = glance_markdown(write_reports(tmp_path / "artifacts"))
    assert "**The champion is `qe_regression`**: business score **61.0** (95 % interval 55.2 to 66.8)" in text
    assert "fails more jobs than today's configuration" in text
    assert "5.60 % of the jobs under-allocated against 2.20 %" in text
    # The best-scoring alternative that fails no more jobs than today: a model here (64.0 < 75.0).
    assert "deploy `cost_aware_regression` instead" in text
    assert "1.22 x the oracle" in text and "125.6 points better" in text
    assert "| `qe_tiny_under_alloc` | exported variant | 75.0 |" in text


def test_glance_is_quiet_when_the_champion_fails_no_more_jobs(tmp_path):
    paths = write_reports(tmp_path / "artifacts", champion="cost_aware_regression", extra_column=False)
    page = write_glance_page(paths, tmp_path / "book" / "glance.md")
    text = page.read_text()
    assert text.startswith("# Results at a glance") and "fails more jobs" not in text
    from resource_prediction.glance import main

    assert main(["--artifacts-dir", str(paths.root), "--out", str(tmp_path / "again.md")]) == 0
    assert (tmp_path / "again.md").read_text() == text


@pytest.mark.parametrize(("path", "expected"), [
    ("artifacts/data/jobs.csv", "artifacts/data/jobs.csv"),
    (PROJECT_ROOT / "notebooks" / "01_data_exploration.ipynb", "notebooks/01_data_exploration.ipynb"),
    ("/somewhere/else/jobs.csv", "jobs.csv"),
])
def test_shown_path_is_never_absolute(path, expected, tmp_path, monkeypatch):
    from resource_prediction.notebook import shown_path

    monkeypatch.chdir(tmp_path)
    assert shown_path(path, tmp_path / "artifacts") == expected


def test_notebook_setup_prepares_paths_and_shows_storage(tmp_path):
    from resource_prediction.notebook import notebook_setup

    data = tmp_path / "jobs.csv"
    data.write_text("x\n")
    setup = notebook_setup(tmp_path / "run", data_path=data)
    assert setup.data_file == data and setup.paths.reports.is_dir()
    assert setup.show_storage(None) == "the SQLite file `run/studies/optuna.db`"
    assert setup.show_storage("postgresql://me:secret@db/x") == "`postgresql://me:***@db/x`"


def test_feature_families_cover_every_feature_the_preprocessor_makes(small_telemetry):
    from resource_prediction.preprocessing import (
        FEATURE_FAMILIES,
        ModelPreprocessor,
        feature_families,
    )

    X = ModelPreprocessor().fit_transform(small_telemetry.iloc[:500])
    families = feature_families(X.columns)
    assert list(families) == list(X.columns) and "other" not in families.values()
    assert set(families.values()) == set(FEATURE_FAMILIES)
    assert feature_families(["made_up"]) == {"made_up": "other"}


def test_search_tables_and_history_from_a_real_study(tmp_path):
    import optuna

    from resource_prediction.plots.search import (
        best_params_table,
        history_figure,
        pruning_figure,
        search_table,
        trials_table,
    )
    from resource_prediction.training.storage import study_name

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name=study_name("qe_regression"), storage=storage)
    for value in (80.0, 70.0):
        trial = study.ask()
        trial.suggest_float("alpha", 0.5, 0.99)
        trial.report(value + 5, 0)
        trial.report(value, 1)
        study.tell(trial, value)
    summary = pd.DataFrame([{
        "family": "qe_regression", "task_type": "regression", "best_value": 70.04, "best_trial": 1,
        "best_params": json.dumps({"alpha": 0.912345, "pre__use_quant_features": False}), "n_trials": 2,
        "n_complete": 2, "n_pruned": 0, "n_failed": 0,
    }])
    table = search_table(summary)
    assert table.loc["qe_regression", "best CV score"] == 70.0 and table.loc["qe_regression", "trials"] == 2
    params = best_params_table(summary)
    assert params.loc["alpha", "qe_regression"] == "0.912"
    trials = trials_table(["qe_regression", "not_searched"], storage)
    assert list(trials["best_so_far"]) == [80.0, 70.0] and list(trials["folds"][0]) == [85.0, 80.0]
    fig = history_figure(trials)
    assert list(fig.data[0].y) == [80.0, 70.0] and fig.layout.xaxis.dtick == 1
    assert pruning_figure(trials, "qe_regression").layout.xaxis.dtick == 1


def test_holdout_table_is_rounded_and_labelled():
    from resource_prediction.plots.evaluation import holdout_table

    holdout = pd.DataFrame([_row("a", "regression", 70.123, 1.23456, 64.56, 60.01, 80.99, extra=1),
                            _row("b", "baseline", 60.0, 2.0, 50.0)])
    table = holdout_table(holdout)
    assert list(table.index) == ["b", "a"]
    assert table.loc["a", "business score"] == 70.1 and table.loc["a", "under-allocated %"] == 1.23
    assert "extra" not in table and "task type" in table
    assert list(table["95 % interval"]) == ["", "60.0-81.0"]


def test_book_copy_drops_plotlyjs_and_hides_the_injected_parameters(tmp_path):
    from resource_prediction.plots.offline import PLOTLYJS_OUTPUT

    nb = nbformat.v4.new_notebook()
    injected = nbformat.v4.new_code_cell("artifacts_dir = '/abs'")
    injected.metadata["tags"] = ["injected-parameters"]
    figure = nbformat.v4.new_code_cell("fig.show()", outputs=[
        nbformat.v4.new_output("display_data", data={"text/html": "<script>plotly</script>"},
                               metadata={PLOTLYJS_OUTPUT: True}),
        nbformat.v4.new_output("display_data", data={"text/html": "<div>figure</div>"}),
    ])
    nb.cells = [injected, figure]
    nbformat.write(nb, tmp_path / "executed.ipynb")
    copy = nbformat.read(write_book_copy(tmp_path / "executed.ipynb", tmp_path / "copy.ipynb"), as_version=4)
    assert "remove-cell" in copy.cells[0].metadata["tags"]
    assert [o.data["text/html"] for o in copy.cells[1].outputs] == ["<div>figure</div>"]


def test_notebook_setup_reads_the_processed_telemetry_back_in_time_order(tmp_path, small_telemetry):
    from resource_prediction.data import save_telemetry, time_split
    from resource_prediction.notebook import notebook_setup
    from resource_prediction.preprocessing import ModelPreprocessor
    from resource_prediction.processed import write_processed

    jobs = small_telemetry.iloc[:400]
    data = save_telemetry(jobs, tmp_path / "jobs.csv")
    setup = notebook_setup(tmp_path / "artifacts", data_path=data)
    train, holdout = time_split(jobs)
    pre = ModelPreprocessor()
    frames = {"train": train, "holdout": holdout, "X_train": pre.fit_transform(train),
              "X_holdout": pre.transform(holdout)}
    write_processed(setup.paths, frames, pre, data, 0.1)
    telemetry = setup.telemetry()
    assert len(telemetry) == 400 and telemetry["time"].is_monotonic_increasing
    assert telemetry["atom_id"].tolist() == [*train["atom_id"], *holdout["atom_id"]]
