import numpy as np
import pandas as pd
import pytest
from pandas.api import types as ptypes

from resource_prediction.allocation import (
    expected_job_cost,
    optimal_allocation_from_samples,
    unit_failure_cost,
)
from resource_prediction.data import RAW_COLUMNS, time_split
from resource_prediction.metrics import allocation_metrics, business_score
from resource_prediction.synthetic import (
    TRUTH_COLUMNS,
    expected_peak_gb,
    generate_telemetry,
    oracle_allocation,
)


def test_schema_and_types(small_telemetry):
    df = small_telemetry
    assert list(df.columns[: len(RAW_COLUMNS)]) == list(RAW_COLUMNS)
    for col in ("atom_id", "location", "branch", "buildProfile", "makeType", "targets", "component"):
        assert ptypes.is_string_dtype(df[col]) and not ptypes.is_object_dtype(df[col]), col
    assert isinstance(df["time"].dtype, pd.DatetimeTZDtype)
    assert df["time"].is_monotonic_increasing
    assert (df["max_rss"] > 0).all()
    assert set(df["makeType"]) == {"dbg", "opt", "rel"}
    assert df["buildProfile"].str.count("-").eq(2).all()
    assert df["atom_id"].str.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}").all()
    assert df["atom_id"].is_unique
    # failures follow from a peak above the request
    over = df["max_rss_gb"] > df["memreq_gb"]
    assert (df.loc[over, "memory_fail_count"] > 0).all()
    assert (df.loc[over, "ts_status"] == "unstable").all()


def test_same_seed_same_frame_other_seed_other_frame():
    a = generate_telemetry(2000, seed=7, with_truth=True)
    b = generate_telemetry(2000, seed=7, with_truth=True)
    pd.testing.assert_frame_equal(a, b)
    c = generate_telemetry(2000, seed=8)
    assert not np.allclose(a["max_rss"].to_numpy(), c["max_rss"].to_numpy())
    assert not any(col.startswith("truth_") for col in c.columns)


def test_default_regime_of_the_configured_request(medium_telemetry):
    """The configured request over-provisions most jobs and still under-provisions a few."""
    _, holdout = time_split(medium_telemetry)
    m = allocation_metrics(holdout["memreq_gb"], holdout["max_rss_gb"])
    assert 1.0 < m["under_pct"] < 10.0
    assert 80.0 < m["total_over_pct"] < 300.0


def _mixture_samples(row, n, rng):
    out = rng.random(n) < row.truth_outlier_prob
    return np.exp(np.where(out, rng.normal(row.truth_outlier_mu, row.truth_outlier_sigma, n),
                           rng.normal(row.truth_mu, row.truth_sigma, n)))


def test_oracle_matches_a_monte_carlo_minimum(small_telemetry):
    """For a few jobs, brute-force the expected cost on sampled peaks; the oracle is at its minimum."""
    _, holdout = time_split(small_telemetry)
    unit_cost = unit_failure_cost(float(expected_peak_gb(holdout).mean()))
    oracle = oracle_allocation(holdout)
    rng = np.random.default_rng(3)
    for i in rng.choice(len(holdout), 5, replace=False):
        row = holdout.iloc[i]
        peaks = _mixture_samples(row, 400_000, rng)
        candidates = oracle[i] * np.linspace(0.8, 1.25, 91)
        mc_cost = [unit_cost * np.mean(peaks > a) + np.mean(np.maximum(a - peaks, 0)) for a in candidates]
        best = candidates[int(np.argmin(mc_cost))]
        assert best == pytest.approx(oracle[i], rel=0.04)
        # and the closed-form cost agrees with the Monte Carlo estimate at the oracle (within 4 SE)
        exact = expected_job_cost(oracle[i], unit_cost, *(row[c] for c in TRUTH_COLUMNS))
        per_draw = unit_cost * (peaks > oracle[i]) + np.maximum(oracle[i] - peaks, 0)
        assert abs(exact - per_draw.mean()) < 4 * per_draw.std() / np.sqrt(peaks.size)


def test_oracle_beats_every_fixed_quantile(medium_telemetry):
    _, holdout = time_split(medium_telemetry)
    peaks = holdout["max_rss_gb"].to_numpy()
    oracle_score = business_score(oracle_allocation(holdout), peaks)
    rng = np.random.default_rng(0)
    draws = np.sort(np.stack([_mixture_samples(r, 2000, rng) for r in holdout.itertuples()]), axis=1)
    for q in (0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999):
        fixed = draws[:, int(q * (draws.shape[1] - 1))]
        assert oracle_score < business_score(fixed, peaks), q


def test_sample_solver_agrees_with_the_mixture_solver(small_telemetry):
    _, holdout = time_split(small_telemetry)
    sub = holdout.iloc[:50]
    unit_cost = unit_failure_cost(float(expected_peak_gb(holdout).mean()))
    rng = np.random.default_rng(1)
    draws = np.sort(np.stack([_mixture_samples(r, 20_000, rng) for r in sub.itertuples()]), axis=1)
    from_samples = optimal_allocation_from_samples(draws, unit_cost)
    from resource_prediction.allocation import optimal_allocation_lognormal_mixture

    exact = optimal_allocation_lognormal_mixture(*(sub[c].to_numpy() for c in TRUTH_COLUMNS), unit_cost)
    ratio = from_samples / exact
    assert np.median(np.abs(ratio - 1)) < 0.03
