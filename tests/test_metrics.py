import numpy as np
import pytest

from resource_prediction.metrics import (
    ALLOCATION_CATEGORIES,
    allocation_categories,
    allocation_metrics,
    bootstrap_business_score,
    business_score,
)


def test_hand_computed_case():
    # peaks 10, 20, 30, 40 (sum 100); allocations: under, exact, +15, +50
    alloc = [5.0, 20.0, 45.0, 90.0]
    peak = [10.0, 20.0, 30.0, 40.0]
    m = allocation_metrics(alloc, peak)
    assert m["n_jobs"] == 4 and m["n_under"] == 1
    assert m["under_pct"] == pytest.approx(25.0)
    assert m["total_over_pct"] == pytest.approx(65.0)  # (15 + 50) / 100
    assert m["business_score"] == pytest.approx(5 * 25.0 + 65.0)
    assert m["mean_gb_wasted"] == pytest.approx(65.0 / 4)
    assert business_score(alloc, peak, penalty=2.0) == pytest.approx(2 * 25.0 + 65.0)


def test_categories_follow_the_seed_boundaries():
    peak = np.full(6, 10.0)
    alloc = np.array([9.99, 10.0, 19.99, 20.0, 35.0, 41.0])
    labels = [c[0] for c in ALLOCATION_CATEGORIES]
    assert allocation_categories(alloc, peak).tolist() == [
        labels[0], labels[1], labels[1], labels[2], labels[3], labels[4],
    ]
    m = allocation_metrics(alloc, peak)
    assert sum(m[f"{label} count"] for label in labels) == 6
    assert m[f"{labels[1]} %"] == pytest.approx(100 * 2 / 6)


@pytest.mark.parametrize(
    ("alloc", "peak", "message"),
    [
        ([1.0, 2.0], [1.0], "must match"),
        ([np.nan], [1.0], "NaN"),
        ([1.0], [0.0], "zero or negative"),
        ([1.0], [-3.0], "zero or negative"),
        ([-1.0], [1.0], "negative"),
        ([], [], "empty"),
    ],
)
def test_bad_input_is_rejected(alloc, peak, message):
    with pytest.raises(ValueError, match=message):
        allocation_metrics(alloc, peak)


def test_bootstrap_interval_brackets_the_score():
    rng = np.random.default_rng(0)
    peak = rng.lognormal(3, 1, 2000)
    alloc = peak * rng.uniform(0.8, 2.5, 2000)
    low, high = bootstrap_business_score(alloc, peak, n_boot=300, seed=1)
    assert low < business_score(alloc, peak) < high
    assert (low, high) == bootstrap_business_score(alloc, peak, n_boot=300, seed=1)
