import hashlib

import numpy as np
import pandas as pd
import pytest
from pandas.api import types as ptypes

from resource_prediction.allocation import (
    expected_job_cost,
    optimal_allocation_from_samples,
    unit_failure_cost,
)
from resource_prediction.cli import main
from resource_prediction.data import RAW_COLUMNS, load_telemetry, time_split
from resource_prediction.deployable import data_fingerprint
from resource_prediction.metrics import allocation_metrics, business_score
from resource_prediction.synthetic import (
    DEFAULT_N_JOBS,
    SCENARIOS,
    TRUTH_COLUMNS,
    Scenario,
    expected_cost_ratio,
    expected_peak_gb,
    generate_telemetry,
    list_scenarios,
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


# --- scenarios ---------------------------------------------------------------------------------------

SCENARIO_JOBS = 20_000


def _frame_hash(df: pd.DataFrame) -> str:
    """SHA-256 of every column (raw and truth) and the index."""
    return hashlib.sha256(pd.util.hash_pandas_object(df, index=True).to_numpy().tobytes()).hexdigest()


@pytest.fixture(scope="module")
def scenario_frames() -> dict[str, pd.DataFrame]:
    """Every scenario, seed 0, with truth: 20,000 jobs (``little_data`` its own 2,000)."""
    return {
        name: generate_telemetry(None if name == "little_data" else SCENARIO_JOBS, seed=0, with_truth=True,
                                 scenario=name)
        for name in SCENARIOS
    }


def test_default_scenario_is_the_data_from_before_scenarios():
    """Fingerprints taken with the generator as it was before scenarios existed (commit dfbef1c)."""
    old = generate_telemetry(2000, seed=0, with_truth=True)
    assert data_fingerprint(old) == "f0be045ffeb1e4a02de4b432eaae71b974eb499738d8c9658eb4b51e36c5e8c2"
    assert _frame_hash(old) == "734c26e06c58cc1f4bba7d3bf6651dfb1378279634fb3d6d352540536ad5d26b"
    other = generate_telemetry(3000, seed=5, with_truth=True, scenario="default")
    assert _frame_hash(other) == "b0514625810056b1e57202d5f4cd837cd0ec11228fac986a54ec758d90cb3bc7"


def test_scenarios_are_listed_and_unknown_names_are_refused():
    assert list(list_scenarios()) == list(SCENARIOS)
    assert {"default", "strong_drift", "new_components", "workflow_phases", "heavy_tails", "little_data"} <= set(
        SCENARIOS
    )
    assert all(isinstance(s, Scenario) for s in SCENARIOS.values())
    with pytest.raises(ValueError, match="unknown scenario 'nope'.*strong_drift"):
        generate_telemetry(100, scenario="nope")
    assert len(generate_telemetry(scenario="default")) == DEFAULT_N_JOBS


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_is_reproducible_and_well_formed(name, scenario_frames):
    df = scenario_frames[name]
    again = generate_telemetry(len(df), seed=0, with_truth=True, scenario=name)
    pd.testing.assert_frame_equal(df, again)
    other = generate_telemetry(len(df), seed=1, scenario=name)
    assert not np.allclose(df["max_rss"].to_numpy(), other["max_rss"].to_numpy())
    assert list(df.columns[: len(RAW_COLUMNS)]) == list(RAW_COLUMNS)
    assert df["time"].is_monotonic_increasing and (df["max_rss"] > 0).all()
    assert df[list(TRUTH_COLUMNS)].notna().all().all()
    over = df["max_rss_gb"] > df["memreq_gb"]
    assert (df.loc[over, "memory_fail_count"] > 0).all()


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_configured_request_stays_realistic(name, scenario_frames):
    """People's request over-provisions most jobs and still fails a few, in every scenario."""
    _, holdout = time_split(scenario_frames[name])
    m = allocation_metrics(holdout["memreq_gb"], holdout["max_rss_gb"])
    assert 0.5 < m["under_pct"] < 20.0
    assert 60.0 < m["total_over_pct"] < 400.0


def _growth_by_component(df: pd.DataFrame) -> float:
    """Median over components of the mean log-peak location in the last quarter minus the first."""
    t = (df["time"] - df["time"].iloc[0]).dt.days.to_numpy()
    quarter = np.where(t < 91, 0, np.where(t >= 274, 1, -1))
    both = df.assign(quarter=quarter).query("quarter >= 0")
    means = both.groupby(["component", "quarter"])["truth_mu"].mean().unstack()
    return float((means[1] - means[0]).median())


def test_strong_drift_grows_faster_than_default(scenario_frames):
    default, drift = _growth_by_component(scenario_frames["default"]), _growth_by_component(
        scenario_frames["strong_drift"]
    )
    assert drift > default + 0.25, (default, drift)


def test_new_components_appear_mid_stream_and_some_have_no_history(scenario_frames):
    for name, expect_new in (("default", False), ("new_components", True)):
        df = scenario_frames[name]
        first_half = set(df["component"].iloc[: len(df) // 2])
        train, holdout = time_split(df)
        history = train["component"].value_counts()
        cold = [c for c in holdout["component"].unique() if history.get(c, 0) < 20]
        assert bool(set(df["component"]) - first_half) == expect_new, name
        assert bool(cold) == expect_new, (name, cold)


def test_workflow_phases_run_in_stages_with_two_valued_peaks(scenario_frames):
    for name, staged in (("default", False), ("workflow_phases", True)):
        df = scenario_frames[name]
        stage = (df["time"] - df["time"].iloc[0]).dt.days.to_numpy() * 6 // 366
        stages_per_component = df.assign(stage=stage).groupby("component")["stage"].nunique()
        assert ((stages_per_component <= 3).sum() >= 10) == staged, name
    wf = scenario_frames["workflow_phases"]
    # an unobserved input size: a second mode 1.7-4x heavier, common, several spreads away
    gap = wf["truth_outlier_mu"] - wf["truth_mu"]
    assert (wf["truth_outlier_prob"] >= 0.2).all() and (gap >= np.log(1.7) - 1e-9).all()
    assert (gap / wf["truth_sigma"]).median() > 4
    assert 0.2 < wf["truth_is_outlier"].mean() < 0.6
    # both modes show in the peaks of one component's jobs (same features up to noise)
    ratio = np.log(wf["max_rss_gb"]) - wf["truth_mu"]
    assert ((ratio > gap / 2) == wf["truth_is_outlier"]).mean() > 0.97


def test_heavy_tails_has_more_and_heavier_outliers(scenario_frames):
    default, heavy = scenario_frames["default"], scenario_frames["heavy_tails"]
    assert heavy["truth_is_outlier"].mean() > 3 * default["truth_is_outlier"].mean()
    factor = np.exp((heavy["truth_outlier_mu"] - heavy["truth_mu"]).median())
    assert factor > np.exp((default["truth_outlier_mu"] - default["truth_mu"]).median()) + 1
    assert heavy["truth_outlier_sigma"].mean() > default["truth_outlier_sigma"].mean()
    assert heavy["truth_sigma"].mean() > default["truth_sigma"].mean()


def test_interactions_differ_by_component_grow_faster_and_spread_by_location(scenario_frames):
    """In ``interactions`` the true effect of the build type differs between components, memory
    grows faster late in the year, and the spread depends on the location."""
    def make_effect_spread(df):  # per component: dbg minus opt in true log-mean, spread over components
        means = df.groupby(["component", "makeType"])["truth_mu"].mean().unstack()
        return float((means["dbg"] - means["opt"]).std())

    default, inter = scenario_frames["default"], scenario_frames["interactions"]
    assert make_effect_spread(inter) > make_effect_spread(default) + 0.1
    assert _growth_by_component(inter) > _growth_by_component(default) + 0.1
    spread = inter.groupby("location")["truth_sigma"].mean()
    assert spread.max() / spread.min() > 2 and default.groupby("location")["truth_sigma"].mean().std() < 0.01


def test_little_data_has_2000_jobs(scenario_frames):
    assert len(scenario_frames["little_data"]) == 2000 == SCENARIOS["little_data"].n_jobs


def _mixture_draws(df: pd.DataFrame, n: int, rng: np.random.Generator) -> np.ndarray:
    """``(len(df), n)`` peaks drawn from each row's true mixture, sorted per row."""
    mu, sigma, p, mu_o, sigma_o = (df[c].to_numpy(dtype=float)[:, None] for c in TRUTH_COLUMNS)
    second = rng.random((len(df), n)) < p
    z = rng.standard_normal((len(df), n))
    return np.sort(np.exp(np.where(second, mu_o + sigma_o * z, mu + sigma * z)), axis=1)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_oracle_matches_a_monte_carlo_minimum(name, scenario_frames):
    """On sampled peaks, the expected cost is minimal at the oracle, for jobs of every scenario."""
    _, holdout = time_split(scenario_frames[name])
    unit_cost = unit_failure_cost(float(expected_peak_gb(holdout).mean()))
    oracle = oracle_allocation(holdout)
    rng = np.random.default_rng(4)
    rows = rng.choice(len(holdout), 4, replace=False)
    draws = _mixture_draws(holdout.iloc[rows], 400_000, rng)
    for peaks, a_star in zip(draws, oracle[rows], strict=True):
        candidates = a_star * np.linspace(0.8, 1.25, 91)
        below = np.searchsorted(peaks, candidates, side="right")  # peaks <= a
        partial = np.concatenate([[0.0], np.cumsum(peaks)])[below]
        mc_cost = unit_cost * (1 - below / peaks.size) + (below * candidates - partial) / peaks.size
        assert candidates[int(np.argmin(mc_cost))] == pytest.approx(a_star, rel=0.04)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_oracle_beats_every_fixed_quantile(name, scenario_frames):
    """In expectation (exactly) and on the realised holdout, in every scenario."""
    _, holdout = time_split(scenario_frames[name])
    peaks = holdout["max_rss_gb"].to_numpy()
    oracle = oracle_allocation(holdout)
    unit_cost = unit_failure_cost(float(expected_peak_gb(holdout).mean()))
    truth = [holdout[c].to_numpy() for c in TRUTH_COLUMNS]
    oracle_cost = expected_job_cost(oracle, unit_cost, *truth).sum()
    draws = _mixture_draws(holdout, 2000, np.random.default_rng(0))
    for q in (0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999):
        fixed = draws[:, int(q * (draws.shape[1] - 1))]
        assert oracle_cost < expected_job_cost(fixed, unit_cost, *truth).sum(), q
        assert business_score(oracle, peaks) < business_score(fixed, peaks), q


def test_cli_generates_a_scenario(tmp_path, capsys):
    out = tmp_path / "little.parquet"
    assert main(["generate", "--scenario", "little_data", "--seed", "2", "--out", str(out)]) == 0
    loaded = load_telemetry(out)
    assert len(loaded) == 2000
    assert "(little_data)" in capsys.readouterr().out
    pd.testing.assert_series_equal(
        loaded["max_rss_gb"].reset_index(drop=True),
        generate_telemetry(seed=2, scenario="little_data")["max_rss_gb"],
        check_names=False, rtol=1e-9,
    )
    with pytest.raises(SystemExit):
        main(["generate", "--scenario", "nope", "--out", str(tmp_path / "x.csv")])


def test_expected_cost_ratio_is_least_for_the_oracle():
    """The oracle's expected cost is the least: its ratio is 1, every other allocation's above
    (scaled, jittered or one flat value), whatever peaks were drawn; a wrong length is refused."""
    df = generate_telemetry(2000, seed=4, with_truth=True)
    oracle = oracle_allocation(df)
    assert expected_cost_ratio(oracle, df) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    others = [0.8 * oracle, 1.2 * oracle, oracle * np.exp(rng.normal(0, 0.1, oracle.size)),
              np.full(oracle.size, float(np.median(oracle)))]
    assert all(expected_cost_ratio(a, df) > 1.0 for a in others)
    assert expected_cost_ratio(1.2 * oracle, df) < expected_cost_ratio(1.5 * oracle, df)
    with pytest.raises(ValueError, match="one allocation per row"):
        expected_cost_ratio(oracle[:-1], df)
