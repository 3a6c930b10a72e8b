"""The deployment advice of notebook 04, written from a holdout table."""

from __future__ import annotations

import pandas as pd
import pytest

from resource_prediction.training.advice import baseline_beating_champion, deployment_advice


def _holdout(baseline_score: float = 150.0) -> pd.DataFrame:
    rows = [
        ("oracle", "oracle", 50.0, 48.0, 52.0, 3.0, 35.0, 10.0),
        ("cost_aware_regression", "regression", 60.0, 57.0, 63.0, 4.0, 40.0, 12.0),
        ("qe_regression", "regression", 70.0, 66.0, 74.0, 5.0, 45.0, 14.0),
        ("group_percentile", "baseline", baseline_score, 140.0, 160.0, 17.0, 61.0, 30.0),
        ("configured_request", "baseline", 167.0, 160.0, 170.0, 2.0, 157.0, 60.0),
    ]
    columns = ["family", "task_type", "business_score", "ci_low", "ci_high", "under_pct",
               "total_over_pct", "mean_gb_wasted"]
    return pd.DataFrame(rows, columns=columns).sort_values("business_score", ignore_index=True)


def test_the_advice_names_the_champion_runner_up_today_and_the_oracle():
    text = deployment_advice(_holdout(), "cost_aware_regression")
    assert "**Deploy `cost_aware_regression`**" in text and "**60.0**" in text
    assert "runner-up is `qe_regression`" in text and "do not overlap" in text
    assert "configured request (167.0" in text and "-107.0 points" in text and "-80 %" in text
    assert "oracle scores 50.0" in text and "10.0 points above" in text
    assert "baseline beats" not in text


def test_a_baseline_that_beats_every_model_is_said_first_hand():
    holdout = _holdout(baseline_score=55.0)
    assert baseline_beating_champion(holdout, "cost_aware_regression")["family"] == "group_percentile"
    assert "**A baseline beats every model here:** `group_percentile` scores 55.0" in (
        deployment_advice(holdout, "cost_aware_regression")
    )


@pytest.mark.parametrize("champion", [None, "cost_aware_regression"])
def test_without_models_there_is_nothing_to_deploy(champion):
    only_baselines = _holdout()[lambda d: d["task_type"] == "baseline"]
    assert deployment_advice(only_baselines, champion).startswith("No model family")


def test_the_pareto_variants_are_offered_when_evaluated():
    pareto = pd.DataFrame({
        "variant": ["qe_tiny_under_alloc", None, "qe_balanced", "qe_small_waste"],
        "holdout_under_pct": [1.0, 3.0, 3.5, 5.0],
        "holdout_total_over_pct": [95.0, 60.0, 49.0, 41.0],
        "holdout_business_score": [100.0, 75.0, 67.2, 66.0],
    })
    text = deployment_advice(_holdout(), "cost_aware_regression", pareto)
    assert "*tiny under allocation* variant (1.00 % under, 95 % over" in text
    assert "*small waste* one (5.00 % under, 41 % over)" in text and "scores 67.2" in text
