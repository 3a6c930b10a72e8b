"""The model registry: every family declared once, and a new one picked up with no other change."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from resource_prediction.data import time_split
from resource_prediction.deployable import DeployableModel
from resource_prediction.models import BasePredictor, suggest_preprocessor_params
from resource_prediction.preprocessing import ModelPreprocessor
from resource_prediction.registry import (
    MODEL_FAMILIES,
    PREPROCESSOR_PREFIX,
    TASK_TYPES,
    ModelFamily,
    families,
    get_family,
    register_family,
    split_params,
    unregister_family,
)
from resource_prediction.synthetic import generate_telemetry

EXPECTED = {
    "qe_regression": "regression",
    "xgboost_regression": "regression",
    "lightgbm_regression": "regression",
    "cost_aware_regression": "regression",
    "xgboost_classification": "classification",
    "lightgbm_classification": "classification",
    "rf_classification": "classification",
    "lr_classification": "classification",
    "configured_request": "baseline",
    "group_percentile": "baseline",
    "max_seen": "baseline",
    "vpa": "baseline",
    "global_quantile": "baseline",
}


def test_families_and_task_types():
    assert {n: f.task_type for n, f in MODEL_FAMILIES.items()} == EXPECTED
    for name, family in MODEL_FAMILIES.items():
        assert family.name == name and family.description
        assert issubclass(family.estimator_class, BasePredictor)
    assert set(families("baseline")) == {n for n, t in EXPECTED.items() if t == "baseline"}
    assert sum(len(families(t)) for t in TASK_TYPES) == len(families())


def test_family_is_frozen():
    with pytest.raises(AttributeError):
        get_family("qe_regression").name = "other"


def test_unknown_family_lists_the_known_ones():
    with pytest.raises(KeyError, match="qe_regression") as info:
        get_family("no_such_model")
    assert "no_such_model" in str(info.value)
    with pytest.raises(ValueError, match="task_type"):
        families("clustering")


@pytest.mark.parametrize("name", list(EXPECTED))
def test_search_space_samples_valid_estimators(name):
    family = get_family(name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(3):
        trial = study.ask()
        params = family.search_space(trial)
        assert f"{PREPROCESSOR_PREFIX}use_quant_features" in params
        assert set(params) == set(trial.params), "every parameter comes from the trial"
        model_params, pre_params = split_params(params)
        estimator = family.make_estimator(params)
        assert estimator.get_params(deep=True).items() >= model_params.items()
        ModelPreprocessor(**pre_params)  # the preprocessor part is valid too
        study.tell(trial, 1.0)


def test_fixed_trial_replays_parameters():
    family = get_family("lightgbm_regression")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    trial = study.ask()
    params = family.search_space(trial)
    assert family.search_space(optuna.trial.FixedTrial(trial.params)) == params


def test_split_params():
    assert split_params({"pre__use_quant_features": False, "alpha": 0.9}) == (
        {"alpha": 0.9},
        {"use_quant_features": False},
    )
    assert split_params(None) == ({}, {})


def test_make_estimator_fills_penalty_and_seed_unless_given():
    cost = get_family("cost_aware_regression")
    assert cost.make_estimator(penalty=9.0, random_state=3).get_params()["penalty"] == 9.0
    assert cost.make_estimator({"penalty": 2.0}, penalty=9.0).penalty == 2.0
    assert cost.make_estimator(random_state=3).random_state == 3
    baseline = get_family("global_quantile").make_estimator(penalty=9.0, random_state=3)
    assert "penalty" not in baseline.get_params()


def test_invalid_family_definitions():
    with pytest.raises(ValueError, match="task_type"):
        ModelFamily("x", "clustering", BasePredictor, lambda trial: {}, "")
    with pytest.raises(ValueError, match="already registered"):
        register_family(get_family("qe_regression"))
    with pytest.raises(TypeError):
        register_family("qe_regression")


class MedianPredictor(BasePredictor):
    """A test-only family: allocates the training median times ``factor``."""

    def __init__(self, factor: float = 2.0):
        self.factor = factor

    def fit(self, X, y):
        _, y = self._validate_fit(X, y)
        self.median_ = float(np.median(y))
        return self

    def _predict(self, Xa):
        return np.full(Xa.shape[0], self.median_ * self.factor)


def _median_space(trial) -> dict:
    return {**suggest_preprocessor_params(trial), "factor": trial.suggest_float("factor", 1.0, 4.0)}


@pytest.fixture
def dummy_family():
    family = register_family(
        ModelFamily("test_median", "baseline", MedianPredictor, _median_space, "median x factor")
    )
    yield family
    unregister_family(family.name)


def test_registered_family_is_picked_up_everywhere(dummy_family):
    assert "test_median" in families() and "test_median" in families("baseline")
    assert get_family("test_median") is dummy_family
    train, holdout = time_split(generate_telemetry(800, seed=2))
    params = dummy_family.search_space(
        optuna.trial.FixedTrial({"pre__use_quant_features": False, "factor": 3.0})
    )
    model = DeployableModel.train("test_median", train, params=params)
    np.testing.assert_allclose(model.predict(holdout), 3.0 * train["max_rss_gb"].median())
    info = model.get_model_info()
    assert info["family"] == "test_median" and info["task_type"] == "baseline"
    assert "build_load" not in info["features"]  # use_quant_features=False reached the preprocessor


def test_unregistered_family_is_gone(dummy_family):
    unregister_family("test_median")
    assert "test_median" not in families()
    register_family(dummy_family)  # the fixture removes it again
