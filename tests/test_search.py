"""The Optuna search: folds, objective, pruning, resuming, shared studies, failing families."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from resource_prediction.cli import main
from resource_prediction.data import save_telemetry, time_split
from resource_prediction.metrics import business_score
from resource_prediction.models import BasePredictor, suggest_preprocessor_params
from resource_prediction.paths import ArtifactPaths
from resource_prediction.registry import ModelFamily, get_family, register_family, unregister_family
from resource_prediction.synthetic import generate_telemetry
from resource_prediction.training.search import (
    FoldCache,
    HyperparameterSearcher,
    best_params,
    default_params,
    family_result,
    search_summary,
    time_series_folds,
)
from resource_prediction.training.storage import open_storage, study_name
from resource_prediction.training.workers import RUN_ATTR

optuna.logging.set_verbosity(optuna.logging.WARNING)

CHEAP = "group_percentile"  # a real registered family whose trials take milliseconds


@pytest.fixture(scope="module")
def jobs() -> pd.DataFrame:
    return generate_telemetry(3000, seed=1)


@pytest.fixture(scope="module")
def train(jobs) -> pd.DataFrame:
    return time_split(jobs)[0]


def _searcher(train, storage, **kwargs) -> HyperparameterSearcher:
    kwargs.setdefault("families", [CHEAP])
    kwargs.setdefault("n_trials", 3)
    return HyperparameterSearcher(train, storage=storage, show_progress_bar=False, **kwargs)


class FailingRegressor(BasePredictor):
    """A model that cannot be fitted (the failing family of the tests)."""

    def __init__(self, level: float = 1.0):
        self.level = level

    def fit(self, X, y):
        raise RuntimeError(f"deliberate failure at level {self.level}")

    def _predict(self, Xa):  # pragma: no cover - never fitted
        return np.zeros(len(Xa))


class CrashingRegressor(FailingRegressor):
    """A model whose fit kills its process the way a native library's segmentation fault does."""

    def fit(self, X, y):
        os.kill(os.getpid(), signal.SIGSEGV)


def _failing_space(trial) -> dict:
    return {**suggest_preprocessor_params(trial, (True,)), "level": trial.suggest_float("level", 0, 1)}


@pytest.fixture
def failing_family():
    family = register_family(ModelFamily(
        "always_fails", "regression", FailingRegressor, _failing_space, "fails on purpose (tests)"
    ))
    yield family.name
    unregister_family(family.name)


def test_time_series_folds_expand_and_follow_in_time():
    folds = time_series_folds(1000, 3)
    assert len(folds) == 3
    for k, (tr, va) in enumerate(folds):
        assert tr.max() < va.min()  # validation strictly after training
        assert tr[0] == 0 and np.all(np.diff(tr) == 1)
        if k:
            assert len(tr) > len(folds[k - 1][0])  # expanding window
    with pytest.raises(ValueError, match="too few"):
        time_series_folds(5, 3)


def test_fold_cache_builds_once_per_preprocessor_setting(train):
    cache = FoldCache(train, n_folds=2)
    a = cache.folds("category", {"use_quant_features": True})
    assert cache.folds("category", {"use_quant_features": True}) is a
    b = cache.folds("category", {"use_quant_features": False})
    assert cache.n_builds == 2
    assert "build_load" in a[0].X_train.columns and "build_load" not in b[0].X_train.columns
    fold = a[1]
    assert len(fold.X_val) == len(fold.y_val) and np.all(fold.y_val > 0)
    # causal replay: validation jobs also see the earlier validation peaks, so the history counts
    # keep growing past what the training part alone gives
    assert fold.X_val["hist_grp_count"].max() > fold.X_train["hist_grp_count"].max()


def test_objective_is_the_mean_cv_business_score(train):
    searcher = _searcher(train, "memory", n_folds=2)
    objective = searcher.objective(CHEAP)
    trial = optuna.trial.FixedTrial({"pre__use_quant_features": True, "margin": 1.2})
    value = objective(trial)
    fam = get_family(CHEAP)
    expected = []
    for fold in searcher.cache.folds("category", {"use_quant_features": True}):
        model = fam.make_estimator({"margin": 1.2}).fit(fold.X_train, fold.y_train)
        expected.append(business_score(model.predict(fold.X_val), fold.y_val))
    assert value == pytest.approx(np.mean(expected))


def test_search_uses_seeded_tpe_and_median_pruner_and_prunes_bad_trials(train):
    storage = open_storage("memory")
    searcher = _searcher(train, storage, families=["global_quantile"], n_trials=8)
    study = searcher.create_study("global_quantile")
    assert isinstance(study.sampler, optuna.samplers.TPESampler)
    assert isinstance(study.pruner, optuna.pruners.MedianPruner)
    for _ in range(5):  # good trials first, then clearly bad ones
        study.enqueue_trial({"pre__use_quant_features": True, "quantile": 0.8})
    for _ in range(3):
        study.enqueue_trial({"pre__use_quant_features": True, "quantile": 0.999})
    result = searcher.search_family("global_quantile")
    assert result.n_complete == 5 and result.n_pruned == 3
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    assert all(t.params["quantile"] == 0.999 for t in pruned)
    assert all(len(t.intermediate_values) == 1 for t in pruned)  # stopped after the first fold


def test_a_new_study_runs_the_family_defaults_first(train):
    """The first trial of a new study is the family's defaults; a resumed study is not given
    them again."""
    storage = open_storage("memory")
    searcher = _searcher(train, storage, n_trials=3)
    searcher.search_family(CHEAP)
    study = optuna.load_study(study_name=study_name(CHEAP), storage=storage)
    first = study.trials[0]
    assert first.user_attrs["defaults"] is True
    assert first.params == default_params(CHEAP) == {"pre__use_quant_features": True, "margin": 1.15}
    searcher.search_family(CHEAP)
    assert sum(t.user_attrs.get("defaults", False) for t in study.trials) == 1


def test_default_params_are_the_estimators_defaults_inside_the_space():
    params = default_params("cost_aware_regression")
    estimator = get_family("cost_aware_regression").estimator
    model = {k: v for k, v in params.items() if not k.startswith("pre__")}
    assert model and all(estimator.get_params()[k] == v for k, v in model.items())
    assert params["pre__ewm_alpha"] == 0.3 and params["n_estimators"] == 100


def test_default_storage_is_sqlite_under_the_artifacts(train, tmp_path):
    paths = ArtifactPaths(tmp_path)
    result = HyperparameterSearcher(
        train, families=[CHEAP], n_trials=2, paths=paths, show_progress_bar=False
    ).run()[CHEAP]
    assert (tmp_path / "studies" / "optuna.db").exists()
    assert result.study_name == study_name(CHEAP) == "resource-prediction/group_percentile"
    params, cv = best_params(CHEAP, paths=paths)
    assert params == result.best_params and cv == result.best_value
    assert "pre__use_quant_features" in params


def test_search_resumes_counting_on_and_keeping_the_best(train, tmp_path):
    url = f"journal:///{tmp_path}/studies.log"
    first = _searcher(train, url, n_trials=3).run()[CHEAP]
    second = _searcher(train, url, n_trials=2, seed=1).run()[CHEAP]
    third = _searcher(train, url, n_trials=2, seed=2).run()[CHEAP]
    assert (first.n_trials, second.n_trials, third.n_trials) == (3, 5, 7)
    assert first.best_value >= second.best_value >= third.best_value
    study = optuna.load_study(study_name=study_name(CHEAP), storage=open_storage(url))
    assert study.user_attrs["penalty"] == 5.0 and study.user_attrs["n_folds"] == 3
    with pytest.raises(ValueError, match="penalty"):
        _searcher(train, url, penalty=10.0).create_study(CHEAP)


def _run_as_postgres(args: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run its tools as the ``postgres`` user."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@pytest.fixture(scope="module")
def postgres_url(free_port):
    """A throw-away PostgreSQL server on a free local port (skipped when PostgreSQL is absent)."""
    pytest.importorskip("psycopg", reason="the PostgreSQL driver (extra 'postgres') is not installed")
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL's initdb/pg_ctl are not on PATH")
    root = Path(tempfile.mkdtemp(prefix="rp-postgres-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    data, port = root / "data", free_port()
    try:
        subprocess.run(_run_as_postgres([initdb, "-D", str(data), "-A", "trust", "-U", "postgres"]),
                       check=True, capture_output=True, timeout=120)
        subprocess.run(_run_as_postgres([
            pg_ctl, "-D", str(data), "-l", str(root / "server.log"), "-w", "-o",
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1",
            "start",
        ]), check=True, capture_output=True, timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"could not start a PostgreSQL server: {exc}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_run_as_postgres([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"]),
                       capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)


def _fresh_database(server_url: str, name: str) -> str:
    """Create an empty database ``name`` on the test server; its URL."""
    psycopg = pytest.importorskip("psycopg")
    with psycopg.connect(server_url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def test_workers_racing_to_create_the_schema_all_open_the_storage(postgres_url):
    """Workers started together on an empty database all get the storage, whoever creates the tables."""
    n = 8
    for round_ in range(3):
        url = _fresh_database(postgres_url, f"race{round_}")
        start = threading.Barrier(n)
        errors: list[BaseException] = []

        def open_together(url=url, start=start, errors=errors) -> None:
            start.wait()
            try:
                open_storage(url).get_all_studies()
            except BaseException as exc:  # noqa: BLE001 - collected and reported below
                errors.append(exc)

        threads = [threading.Thread(target=open_together) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, f"round {round_}: {errors[0]!r}"


@pytest.mark.parametrize("backend", ["journal", "postgresql"])
def test_two_worker_processes_share_one_study(backend, jobs, tmp_path, request):
    data = save_telemetry(jobs, tmp_path / "jobs.csv")
    url = (f"journal:///{tmp_path}/shared.log" if backend == "journal"
           else request.getfixturevalue("postgres_url"))
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "resource_prediction", "search", "--data", str(data),
             "--artifacts-dir", str(tmp_path / f"art{i}"), "--storage", url, "--model-family", CHEAP,
             "--n-trials", "3", "--seed", str(i), "--no-progress-bar"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(2)
    ]
    for w in workers:
        _, err = w.communicate(timeout=300)
        assert w.returncode == 0, err[-2000:]
    study = optuna.load_study(study_name=study_name(CHEAP), storage=open_storage(url))
    states = [t.state for t in study.trials]
    assert len(states) == 6 and set(states) <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert len({t.number for t in study.trials}) == 6


def test_parallel_trials_run_in_worker_processes_on_one_study(train, tmp_path):
    url = f"sqlite:///{tmp_path}/studies.db"
    searcher = _searcher(train, url, n_trials=6, n_jobs=2)
    assert searcher._worker_pool() is not None  # a shared storage: processes, not threads
    result = searcher.run()[CHEAP]
    assert result.status == "ok" and result.n_trials == 6
    study = optuna.load_study(study_name=study_name(CHEAP), storage=open_storage(url))
    runs = {t.user_attrs.get(RUN_ATTR) for t in study.trials}
    # every trial ran in this search's workers: the defaults first (one worker), then the rest
    assert len(runs) == 2 and None not in runs
    assert study.trials[0].user_attrs["defaults"] is True
    assert sum(t.user_attrs.get("defaults", False) for t in study.trials) == 1
    # The two workers' samplers are seeded apart: their random start-up trials differ.
    params = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(params)) == len(params)
    assert searcher._workers is None  # run() stopped the workers


def test_in_memory_studies_and_main_module_families_use_threads(train):
    assert _searcher(train, "memory", n_jobs=2)._worker_pool() is None


def test_a_worker_that_crashes_fails_its_trial_and_the_search_goes_on(train, tmp_path):
    family = register_family(ModelFamily(
        "crashes", "regression", CrashingRegressor, _failing_space, "kills its process (tests)"
    ))
    try:
        url = f"sqlite:///{tmp_path}/studies.db"
        searcher = _searcher(train, url, families=[family.name, CHEAP], n_trials=4, n_jobs=2)
        results = searcher.run()
    finally:
        unregister_family(family.name)
    crashed = results[family.name]
    assert crashed.status == "failed" and crashed.n_failed >= 1
    assert any("worker process died" in r for r in crashed.fail_reasons)
    study = optuna.load_study(study_name=study_name(family.name), storage=open_storage(url))
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    assert results[CHEAP].status == "ok" and results[CHEAP].n_trials == 4  # a fresh pool


def test_a_failing_family_is_reported_and_the_search_goes_on(train, tmp_path, failing_family, capsys):
    searcher = _searcher(train, "memory", families=[failing_family, CHEAP], n_trials=2)
    results = searcher.run()
    bad = results[failing_family]
    assert bad.status == "failed" and bad.n_failed == 2 and bad.best_params is None
    assert "deliberate failure" in bad.fail_reasons[0]
    assert results[CHEAP].status == "ok"
    summary = searcher.summary(results).set_index("family")
    assert summary.loc[failing_family, "status"] == "failed"
    assert "RuntimeError" in summary.loc[failing_family, "fail_reasons"]

    data = save_telemetry(train, tmp_path / "train.csv")
    rc = main(["search", "--data", str(data), "--artifacts-dir", str(tmp_path / "art"),
               "--model-family", failing_family, "--model-family", CHEAP, "--n-trials", "2",
               "--no-progress-bar"])
    assert rc == 1
    assert "no successful trial for: always_fails" in capsys.readouterr().out
    written = pd.read_csv(tmp_path / "art" / "reports" / "search_summary.csv").set_index("family")
    assert written.loc[failing_family, "n_failed"] == 2
    assert written.loc[CHEAP, "status"] == "ok"
    stored = search_summary([failing_family, CHEAP], paths=ArtifactPaths(tmp_path / "art"))
    assert list(stored["status"]) == ["failed", "ok"]


def test_parallel_trials_run_in_threads(train):
    result = _searcher(train, "memory", n_trials=4, n_jobs=2).run()[CHEAP]
    assert result.n_trials == 4 and result.status == "ok"


def test_trials_of_an_earlier_parameter_layout_are_passed_over(tmp_path):
    """A resumed study may hold trials whose keys the family no longer takes (``n_estimators``
    before it became ``booster__n_estimators``): the best usable trial is reported instead."""
    url = f"sqlite:///{tmp_path}/studies.db"
    family = "lightgbm_regression"
    study = optuna.create_study(study_name=study_name(family), storage=open_storage(url))
    dist = optuna.distributions.IntDistribution(50, 150)
    for key, value in (("n_estimators", 10.0), ("booster__n_estimators", 20.0)):
        study.add_trial(optuna.trial.create_trial(
            params={key: 100}, distributions={key: dist}, value=value,
            user_attrs={"params": {key: 100}},
        ))
    params, score = best_params(family, url)
    assert params == {"booster__n_estimators": 100} and score == 20.0
    result = family_result(study, family, "regression")
    assert result.status == "ok" and result.best_trial == 1
