"""ModelPreprocessor: feature families on hand-made frames, causality, robustness, serialisation."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from conftest import write_nextflow_trace
from hypothesis import given, settings
from hypothesis import strategies as st
from pandas.api import types as ptypes
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from resource_prediction.data import load_telemetry, save_telemetry
from resource_prediction.features.history import MeanHistory, replay_means
from resource_prediction.features.level import INTERACTION_MARGIN, LEVEL_REFITS, STATIC, JobLevel
from resource_prediction.features.raw import SMALL_FRAME, UNKNOWN
from resource_prediction.features.static_level import TREND_HORIZON, StaticLevel
from resource_prediction.preprocessing import (
    CATEGORICAL_FEATURES,
    HISTORY_FEATURES,
    QUANT_FEATURES,
    ModelPreprocessor,
)
from resource_prediction.synthetic import generate_telemetry

T0 = pd.Timestamp("2024-03-04 08:00", tz="UTC")  # a Monday
REQUIRED_HISTORY = ["hist_grp_prev", "hist_grp_p95_5", "hist_global_mean_5", "hist_grp_count", "memreq_gb"]


def raw_frame(n: int | None = None, **columns) -> pd.DataFrame:
    """Raw telemetry rows with defaults for every column not given (one group, hourly jobs)."""
    if n is None:
        n = len(next(iter(columns.values())))
    defaults = {
        "time": T0 + pd.to_timedelta(np.arange(n), unit="h"),
        "location": "eu-west-1",
        "component": "core",
        "buildProfile": "linuxx86_64-gcc13-O2",
        "makeType": "opt",
        "ts_phase": "build",
        "branch": "main",
        "targets": "all",
        "jobs": 0,
        "localJobs": 16,
        "memreq_gb": 64.0,
        "max_rss_gb": 10.0,
    }
    data = {k: columns.get(k, v) for k, v in defaults.items()}
    data.update({k: v for k, v in columns.items() if k not in defaults})
    df = pd.DataFrame({k: (v if np.ndim(v) else [v] * n) for k, v in data.items()})
    for col in ("jobs", "localJobs"):
        df[col] = df[col].astype("Int64")
    return df


def without_target(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=[c for c in ("max_rss", "max_rss_gb") if c in df.columns])


@pytest.fixture(scope="module")
def jobs() -> pd.DataFrame:
    return generate_telemetry(3000, seed=3)


@pytest.fixture(scope="module")
def fitted(jobs) -> ModelPreprocessor:
    return ModelPreprocessor().fit(jobs.iloc[:2500])


# ---------------------------------------------------------------- layout and dtypes
def test_output_layout_and_dtypes(jobs, fitted):
    X = fitted.transform(jobs.iloc[2500:])
    assert list(X.columns) == fitted.feature_names_
    assert X.index.equals(jobs.index[2500:])
    for name in REQUIRED_HISTORY:
        assert name in X.columns
    for col in fitted.categorical_features_:
        assert isinstance(X[col].dtype, pd.CategoricalDtype)
        assert list(X[col].cat.categories) == fitted.vocabularies_[col]
        assert X[col].cat.categories[-1] == UNKNOWN
    numeric = [c for c in X.columns if c not in fitted.categorical_features_]
    assert all(ptypes.is_float_dtype(X[c]) for c in numeric)
    assert not X[numeric].isna().any().any()
    assert list(fitted.get_feature_names_out()) == fitted.feature_names_


def test_history_is_never_nan_without_target(jobs, fitted):
    X = fitted.transform(without_target(jobs.iloc[2500:]))
    assert not X[list(HISTORY_FEATURES)].isna().any().any()
    assert (X["hist_grp_p95_5"] > 0).all()


def test_quant_features_switch(jobs):
    with_q = ModelPreprocessor().fit(jobs)
    without_q = ModelPreprocessor(use_quant_features=False).fit(jobs)
    assert set(QUANT_FEATURES) <= set(with_q.feature_names_)
    assert not set(QUANT_FEATURES) & set(without_q.feature_names_)
    assert list(without_q.transform(jobs).columns) == without_q.feature_names_


# ---------------------------------------------------------------- feature families
@pytest.mark.parametrize("repeat", [1, SMALL_FRAME + 1])  # the few-rows and the vectorised paths
def test_temporal_features(repeat):
    times = pd.to_datetime(
        ["2024-12-30 10:15", "2021-01-03 23:59", "2024-02-29 00:00", "2026-06-15 13:00"], utc=True
    )
    df = raw_frame(time=np.repeat(times, repeat))
    X = ModelPreprocessor().fit_transform(df)
    expected = pd.DataFrame({
        "year": times.year, "month": times.month, "day_of_week": times.day_of_week,
        "hour": times.hour, "week_of_year": times.isocalendar().week.to_numpy(),
    }).astype(float)
    got = X[expected.columns].iloc[::repeat].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected)
    # ISO corner cases: 2024-12-30 is in week 1 of 2025, 2021-01-03 in week 53 of 2020.
    assert got["week_of_year"].tolist()[:2] == [1.0, 53.0]


def test_time_as_string_and_naive_datetime():
    df = raw_frame(3)
    as_str = df.assign(time=df["time"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    naive = df.assign(time=df["time"].dt.tz_localize(None))
    reference = ModelPreprocessor().fit_transform(df)
    pd.testing.assert_frame_equal(ModelPreprocessor().fit_transform(as_str), reference)
    pd.testing.assert_frame_equal(ModelPreprocessor().fit_transform(naive), reference)


@pytest.mark.parametrize("repeat", [1, SMALL_FRAME + 1])
def test_build_profile_parts_and_malformed(repeat):
    profiles = ["linuxx86_64-gcc13-O2", "win-64-msvc19-O0", "gcc13O2", "a--O2", None]
    df = raw_frame(buildProfile=np.repeat(np.array(profiles, dtype=object), repeat))
    X = ModelPreprocessor().fit_transform(df).iloc[::repeat]
    parts = X[["architecture", "compiler", "optimisation"]].astype(str).to_numpy().tolist()
    assert parts == [
        ["linuxx86_64", "gcc13", "O2"],
        ["win-64", "msvc19", "O0"],
        [UNKNOWN] * 3,
        [UNKNOWN] * 3,
        [UNKNOWN] * 3,
    ]


@pytest.mark.parametrize("repeat", [1, SMALL_FRAME + 1])
def test_branch_and_target_features(repeat):
    df = raw_frame(
        branch=np.repeat(["feature_1234", "release_24_3", "main", "dev_", "42"], repeat),
        targets=np.repeat(["all,dist,tests", "all", "dist", " all , , lib ", "alldist"], repeat),
    )
    X = ModelPreprocessor().fit_transform(df).iloc[::repeat]
    assert X["branch_prefix"].astype(str).tolist() == ["feature", "release", "main", "dev", UNKNOWN]
    assert X["branch_number"].tolist() == [1234.0, 24 + 3 / 1000, -1.0, -1.0, 42.0]
    assert X["n_targets"].tolist() == [3.0, 1.0, 1.0, 2.0, 1.0]
    assert X["has_dist"].tolist() == [1.0, 0.0, 1.0, 0.0, 0.0]


def test_quant_feature_definitions():
    df = raw_frame(
        makeType=["dbg", "opt", "rel", "dbg"],
        targets=["all,dist", "all", "all,tests,lib", "dist"],
        localJobs=[4, 8, 16, 64],
        jobs=[0, 100, 0, 0],
    )
    X = ModelPreprocessor().fit_transform(df)
    n_targets = np.array([2.0, 1.0, 3.0, 1.0])
    heavy = np.array([1.0, 0.0, 0.0, 1.0])
    local = np.array([4.0, 8.0, 16.0, 64.0])
    np.testing.assert_array_equal(X["build_load"], local * n_targets)
    np.testing.assert_array_equal(X["target_intensity"], n_targets + heavy)
    np.testing.assert_array_equal(X["debug_multiplier"], [2.0, 1.0, 1.0, 2.0])
    np.testing.assert_array_equal(X["heavy_target"], heavy)
    np.testing.assert_array_equal(X["high_parallelism"], local >= np.percentile(local, 75))


def test_missing_values_filled_from_fitted_medians_but_not_the_request():
    """Missing numeric values get the training median, except the configured request: a job that
    has none keeps NaN, so neither the guard nor a baseline mistakes the median for its request."""
    train = raw_frame(jobs=[0, 10, 20], localJobs=[4, 8, 32], memreq_gb=[10.0, 20.0, 90.0])
    pre = ModelPreprocessor().fit(train)
    new = raw_frame(2, jobs=pd.array([None, 500], dtype="Int64"), localJobs=pd.array([None, None], dtype="Int64"),
                    memreq_gb=[np.nan, 7.0], location=[None, "eu-west-1"])
    new["time"] = [pd.NaT, T0 + pd.Timedelta(days=30)]
    X = pre.transform(without_target(new))
    assert X["jobs"].tolist() == [10.0, 500.0]
    assert X["localJobs"].tolist() == [8.0, 8.0]
    assert np.isnan(X.loc[0, "memreq_gb"]) and X.loc[1, "memreq_gb"] == 7.0
    assert X["location"].astype(str).tolist() == [UNKNOWN, "eu-west-1"]
    assert X.loc[0, "year"] == 2024.0 and X.loc[0, "hour"] == pre.fill_values_["hour"]
    assert not X.drop(columns=[*pre.categorical_features_, "memreq_gb"]).isna().any().any()


# ---------------------------------------------------------------- memory history
def test_group_history_statistics():
    peaks = np.arange(1.0, 9.0)  # one group, peaks 1..8 in time order
    X = ModelPreprocessor().fit_transform(raw_frame(max_rss_gb=peaks))
    s = pd.Series(peaks).shift(1)
    for i in range(1, len(peaks)):
        prev = peaks[:i]
        assert X["hist_grp_prev"].iloc[i] == prev[-1]
        assert X["hist_grp_p95_5"].iloc[i] == pytest.approx(np.percentile(prev[-5:], 95))
        assert X["hist_grp_mean_5"].iloc[i] == pytest.approx(prev[-5:].mean())
        assert X["hist_grp_max_20"].iloc[i] == prev.max()
        assert X["hist_grp_p95_20"].iloc[i] == pytest.approx(np.percentile(prev[-20:], 95))
        assert X["hist_grp_count"].iloc[i] == i
        assert X["hist_global_mean_5"].iloc[i] == pytest.approx(prev[-5:].mean())
    np.testing.assert_allclose(X["hist_grp_ewm"].iloc[1:], s.ewm(alpha=0.3).mean().iloc[1:])
    # The very first job has no history at all: its own request stands in.
    assert X["hist_grp_source"].iloc[0] == 3.0
    assert X["hist_grp_p95_5"].iloc[0] == 64.0


def test_long_window_keeps_last_20():
    peaks = np.r_[100.0, np.arange(1.0, 26.0)]  # an early spike that leaves the 20-window
    X = ModelPreprocessor().fit_transform(raw_frame(max_rss_gb=peaks))
    assert X["hist_grp_max_20"].iloc[20] == 100.0
    assert X["hist_grp_max_20"].iloc[21] == 20.0
    assert X["hist_grp_p95_20"].iloc[25] == pytest.approx(np.percentile(peaks[5:25], 95))


def test_fallback_chain_group_coarse_global():
    df = raw_frame(
        component=["core", "core", "core", "ui"],
        buildProfile=["linuxx86_64-gcc13-O2", "linuxx86_64-gcc13-O2", "win64-msvc19-O0", "win64-msvc19-O0"],
        max_rss_gb=[10.0, 30.0, 50.0, 70.0],
    )
    X = ModelPreprocessor().fit_transform(df)
    assert X["hist_grp_source"].tolist() == [3.0, 0.0, 1.0, 2.0]
    # Row 2: new profile of core/opt, so the coarse group (core, opt) fills in: peaks 10 and 30.
    assert X["hist_grp_p95_5"].iloc[2] == pytest.approx(np.percentile([10.0, 30.0], 95))
    assert X["hist_grp_count"].iloc[2] == 0 and X["hist_coarse_count"].iloc[2] == 2
    # Row 3: a new component: all jobs fill in.
    assert X["hist_grp_mean_5"].iloc[3] == pytest.approx(30.0)
    assert X["hist_global_mean_5"].iloc[3] == pytest.approx(30.0)


def test_min_history_uses_coarse_group_for_short_groups():
    df = raw_frame(
        buildProfile=["a-gcc-O2", "a-gcc-O2", "a-gcc-O3", "a-gcc-O3"], max_rss_gb=[10.0, 20.0, 40.0, 80.0]
    )
    X = ModelPreprocessor(min_history=2).fit_transform(df)
    # Row 3 has one peak of its own group (< 2): the coarse group's three peaks are used instead.
    assert X["hist_grp_source"].iloc[3] == 1.0
    assert X["hist_grp_mean_5"].iloc[3] == pytest.approx(np.mean([10.0, 20.0, 40.0]))
    assert X["hist_grp_count"].iloc[3] == 1


def test_transform_without_target_uses_fitted_history():
    train = raw_frame(max_rss_gb=[1.0, 2.0, 3.0])
    pre = ModelPreprocessor().fit(train)
    X = pre.transform(without_target(raw_frame(2, time=[T0 + pd.Timedelta(days=1)] * 2)))
    assert X["hist_grp_prev"].tolist() == [3.0, 3.0]
    assert X["hist_grp_count"].tolist() == [3.0, 3.0]


def test_transform_replays_targets_of_the_frame():
    pre = ModelPreprocessor().fit(raw_frame(max_rss_gb=[1.0, 2.0, 3.0]))
    later = raw_frame(3, time=T0 + pd.to_timedelta([24, 25, 26], unit="h"), max_rss_gb=[7.0, 8.0, 9.0])
    X = pre.transform(later)
    assert X["hist_grp_prev"].tolist() == [3.0, 7.0, 8.0]
    assert X["hist_grp_count"].tolist() == [3.0, 4.0, 5.0]
    # Replaying does not change the stored history.
    assert pre.transform(without_target(later))["hist_grp_prev"].tolist() == [3.0] * 3


def test_rows_in_any_order_align_with_input(jobs):
    frame = jobs.iloc[:400]
    frame = frame[~frame["time"].duplicated(keep=False)]  # ties would follow the input order
    reference = ModelPreprocessor().fit_transform(frame)
    shuffled = frame.sample(frac=1.0, random_state=0)
    shuffled.index = [f"job{i}" for i in shuffled.index]
    X = ModelPreprocessor().fit_transform(shuffled)
    assert X.index.equals(shuffled.index)
    expected = reference.loc[[int(i[3:]) for i in shuffled.index]]
    np.testing.assert_allclose(X[list(HISTORY_FEATURES)], expected[list(HISTORY_FEATURES)])


def test_ties_in_time_are_broken_by_input_order():
    df = raw_frame(time=[T0] * 3, max_rss_gb=[5.0, 6.0, 7.0])
    X = ModelPreprocessor().fit_transform(df.iloc[[2, 0, 1]])
    assert X["hist_grp_prev"].tolist()[1:] == [7.0, 5.0]


def test_observe_equals_fitting_on_everything(jobs):
    """The peak history after observe is that of fitting on everything; the static level of
    ``hist_grp_level`` is fitted in ``fit`` and stays (like the vocabularies), so observing equals
    replaying with the same fitted preprocessor."""
    a, b, c = jobs.iloc[:1500], jobs.iloc[1500:2500], without_target(jobs.iloc[2500:])
    online = ModelPreprocessor().fit(a).observe(b)
    batch = ModelPreprocessor().fit(pd.concat([a, b]))
    cols = [name for name in HISTORY_FEATURES if name != "hist_grp_level"]
    pd.testing.assert_frame_equal(online.transform(c)[cols], batch.transform(c)[cols])
    assert online.n_history_jobs_ == batch.n_history_jobs_ == 2500
    replayed = ModelPreprocessor().fit(a).transform(pd.concat([b, c])).loc[c.index]
    np.testing.assert_allclose(online.transform(c)[list(HISTORY_FEATURES)],
                               replayed[list(HISTORY_FEATURES)], rtol=1e-9)


def test_replay_after_fit_equals_fit_transform_of_everything(jobs):
    a, b = jobs.iloc[:2000], jobs.iloc[2000:]
    replayed = ModelPreprocessor().fit(a).transform(b)
    together = ModelPreprocessor().fit_transform(jobs).iloc[2000:]
    # hist_grp_level prices each job's configuration with the static level fitted on the jobs
    # before it: all 2,000 of ``a`` after fit(a), the blocks before it in fit_transform(jobs).
    cols = [name for name in HISTORY_FEATURES if name != "hist_grp_level"]
    np.testing.assert_allclose(replayed[cols], together[cols], rtol=1e-9)


def test_one_job_at_a_time_equals_replay(jobs):
    """Online loop: transform a job without its peak, then observe it."""
    a, b = jobs.iloc[:2000], jobs.iloc[2000:2040]
    online = ModelPreprocessor().fit(a)
    rows = []
    for i in range(len(b)):
        rows.append(online.transform(without_target(b.iloc[[i]])))
        online.observe(b.iloc[[i]])
    cols = list(HISTORY_FEATURES)
    expected = ModelPreprocessor().fit(a).transform(b)[cols]
    np.testing.assert_allclose(pd.concat(rows)[cols], expected, rtol=1e-9)


# ---------------------------------------------------------------- causality (property tests)
_profiles = ["lx-gcc-O2", "lx-gcc-O3", "bad"]


@st.composite
def frames(draw):
    n = draw(st.integers(2, 24))
    return raw_frame(
        time=T0 + pd.to_timedelta(draw(st.lists(st.integers(0, 12), min_size=n, max_size=n)), unit="h"),
        component=draw(st.lists(st.sampled_from(["a", "b"]), min_size=n, max_size=n)),
        buildProfile=draw(st.lists(st.sampled_from(_profiles), min_size=n, max_size=n)),
        makeType=draw(st.lists(st.sampled_from(["dbg", "opt"]), min_size=n, max_size=n)),
        max_rss_gb=draw(st.lists(st.floats(0.1, 500.0), min_size=n, max_size=n)),
    )


def _check_causal(make_features, df, k, new_value):
    order = np.lexsort((np.arange(len(df)), df["time"].to_numpy()))  # time, then input order
    rank = np.empty(len(df), dtype=int)
    rank[order] = np.arange(len(df))
    changed = df.copy()
    changed.iloc[k, changed.columns.get_loc("max_rss_gb")] = new_value
    before, after = make_features(df), make_features(changed)
    upto = rank <= rank[k]
    pd.testing.assert_frame_equal(before[upto], after[upto])
    # Not vacuous: the next job of the same group sees the new peak as its previous one.
    same = np.flatnonzero(
        (df["component"] == df["component"].iloc[k]).to_numpy()
        & (df["buildProfile"] == df["buildProfile"].iloc[k]).to_numpy()
        & (df["makeType"] == df["makeType"].iloc[k]).to_numpy()
        & (rank > rank[k])
    )
    if same.size and not np.isnan(new_value):
        nxt = same[np.argmin(rank[same])]
        assert after["hist_grp_prev"].iloc[nxt] == new_value


@settings(max_examples=30, deadline=None)
@given(df=frames(), data=st.data())
def test_fit_transform_is_causal(df, data):
    k = data.draw(st.integers(0, len(df) - 1))
    new_value = data.draw(st.one_of(st.floats(0.1, 500.0), st.just(np.nan)))
    _check_causal(lambda d: ModelPreprocessor().fit_transform(d), df, k, new_value)


@settings(max_examples=30, deadline=None)
@given(df=frames(), data=st.data())
def test_replay_transform_is_causal(df, data):
    history = raw_frame(
        6, time=T0 - pd.to_timedelta(np.arange(6, 0, -1), unit="D"),
        component=["a", "b"] * 3, max_rss_gb=[3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
    )
    pre = ModelPreprocessor().fit(history)
    k = data.draw(st.integers(0, len(df) - 1))
    new_value = data.draw(st.floats(0.1, 500.0))
    _check_causal(pre.transform, df, k, new_value)


# ---------------------------------------------------------------- unseen, malformed, missing
def test_unseen_categories_map_to_unknown_without_shifting(jobs, fitted):
    new = without_target(jobs.iloc[2500:2600]).copy()
    reference = fitted.transform(new)
    new["location"] = "mars-north-1"
    new["ts_phase"] = "deploy"
    X = fitted.transform(new)
    assert (X["location"] == UNKNOWN).all() and (X["ts_phase"] == UNKNOWN).all()
    assert list(X["location"].cat.categories) == fitted.vocabularies_["location"]
    # the job-adjusted level prices the configuration: unknown categories count 0 there
    others = [c for c in X.columns if c not in ("location", "ts_phase", "hist_grp_level")]
    pd.testing.assert_frame_equal(X[others], reference[others])
    assert np.isfinite(X["hist_grp_level"]).all() and (X["hist_grp_level"] > 0).all()


def test_unseen_component_gets_global_history(fitted, jobs):
    new = without_target(jobs.iloc[2500:2510]).assign(component="brand-new")
    X = fitted.transform(new)
    assert (X["component"] == UNKNOWN).all()
    assert (X["hist_grp_source"] == 2.0).all() and (X["hist_grp_count"] == 0).all()
    assert X["hist_grp_p95_5"].notna().all()


@pytest.mark.parametrize("column", ["time", "component", "buildProfile", "makeType", "targets", "localJobs"])
def test_missing_required_column_names_it(jobs, fitted, column):
    with pytest.raises(ValueError, match=column):
        ModelPreprocessor().fit(jobs.drop(columns=column))
    with pytest.raises(ValueError, match=column):
        fitted.transform(jobs.drop(columns=column))


def test_missing_memreq_names_it(jobs):
    with pytest.raises(ValueError, match="memreq"):
        ModelPreprocessor().fit(jobs.drop(columns=["memreq", "memreq_gb"]))


def test_fit_needs_target_and_observe_needs_target(jobs, fitted):
    with pytest.raises(ValueError, match="max_rss"):
        ModelPreprocessor().fit(without_target(jobs))
    with pytest.raises(ValueError, match="max_rss"):
        clone(fitted).fit(jobs).observe(without_target(jobs.iloc[:3]))


def test_unparseable_time_is_a_clear_error(jobs, fitted):
    bad = jobs.iloc[:3].assign(time=["2024-01-01T00:00:00Z", "yesterday", None])
    with pytest.raises(ValueError, match="time"):
        fitted.transform(bad)


def test_not_fitted_and_bad_parameters(jobs):
    with pytest.raises(NotFittedError):
        ModelPreprocessor().transform(jobs)
    with pytest.raises(NotFittedError):
        ModelPreprocessor().observe(jobs)
    for params in ({"encoding": "ordinal"}, {"min_history": 0}, {"ewm_alpha": 0.0},
                   {"heavy_targets": "dist"}, {"use_quant_features": "yes"}, {"level_shrinkage": (0.0,)},
                   {"level_shrinkage": "3"}, {"level_memories": (1.5,)}):
        with pytest.raises(ValueError):
            ModelPreprocessor(**params).fit(jobs)
    with pytest.raises(ValueError):
        ModelPreprocessor().set_params(window=3)


def test_y_overrides_target_columns(jobs):
    y = jobs["max_rss_gb"].to_numpy() * 2
    a = ModelPreprocessor().fit_transform(without_target(jobs.iloc[:500]), y[:500])
    b = ModelPreprocessor().fit_transform(jobs.iloc[:500].assign(max_rss_gb=y[:500]))
    pd.testing.assert_frame_equal(a, b)


# ---------------------------------------------------------------- encodings, serialisation, input forms
def test_onehot_carries_the_same_information(jobs):
    cat = ModelPreprocessor().fit(jobs.iloc[:2500])
    hot = ModelPreprocessor(encoding="onehot").fit(jobs.iloc[:2500])
    new = jobs.iloc[2500:].assign(location=["mars"] * 10 + list(jobs["location"].iloc[2510:]))
    Xc, Xh = cat.transform(new), hot.transform(new)
    assert list(Xh.columns) == hot.feature_names_ and hot.categorical_features_ == []
    for col in CATEGORICAL_FEATURES:
        block = Xh[[f"{col}={v}" for v in cat.vocabularies_[col]]].to_numpy()
        assert (block.sum(axis=1) == 1).all()
        np.testing.assert_array_equal(block.argmax(axis=1), Xc[col].cat.codes.to_numpy())
    numeric = [c for c in Xc.columns if c not in CATEGORICAL_FEATURES]
    pd.testing.assert_frame_equal(Xh[numeric], Xc[numeric])


def test_pickle_round_trip(jobs, fitted):
    restored = pickle.loads(pickle.dumps(fitted))
    for frame in (jobs.iloc[2500:], without_target(jobs.iloc[2500:])):
        pd.testing.assert_frame_equal(restored.transform(frame), fitted.transform(frame))
    restored.observe(jobs.iloc[2500:2600])
    again = clone(fitted).fit(jobs.iloc[:2500]).observe(jobs.iloc[2500:2600])
    tail = without_target(jobs.iloc[2600:])
    pd.testing.assert_frame_equal(restored.transform(tail), again.transform(tail))


def test_read_csv_input(tmp_path, jobs, fitted):
    path = save_telemetry(jobs.iloc[2500:], tmp_path / "jobs.csv")
    raw = pd.read_csv(path, sep=";")
    assert ptypes.is_string_dtype(raw["time"]) and "max_rss_gb" not in raw.columns
    X = fitted.transform(raw)
    expected = fitted.transform(jobs.iloc[2500:].reset_index(drop=True))
    pd.testing.assert_frame_equal(X, expected, check_exact=False, rtol=1e-12)
    assert not X[list(HISTORY_FEATURES)].isna().any().any()


def test_fit_on_read_csv_input(tmp_path, jobs):
    path = save_telemetry(jobs.iloc[:800], tmp_path / "jobs.csv")
    from_csv = ModelPreprocessor().fit_transform(pd.read_csv(path, sep=";"))
    direct = ModelPreprocessor().fit_transform(jobs.iloc[:800])
    pd.testing.assert_frame_equal(from_csv, direct, check_exact=False, rtol=1e-12)


def test_clone_and_params_round_trip():
    pre = ModelPreprocessor(encoding="onehot", min_history=3, heavy_targets=("dist", "package"))
    assert clone(pre).get_params() == pre.get_params()


def test_empty_frames(jobs, fitted):
    assert fitted.transform(jobs.iloc[:0]).columns.tolist() == fitted.feature_names_
    assert len(fitted.transform(without_target(jobs.iloc[:0]))) == 0
    before = fitted.n_history_jobs_
    assert pickle.loads(pickle.dumps(fitted)).observe(jobs.iloc[:0]).n_history_jobs_ == before
    with pytest.raises(ValueError, match="empty"):
        ModelPreprocessor().fit(jobs.iloc[:0])


def test_gradient_boosting_libraries_take_the_output_natively(jobs):
    lightgbm = pytest.importorskip("lightgbm")
    xgboost = pytest.importorskip("xgboost")
    pre = ModelPreprocessor()
    X = pre.fit_transform(jobs.iloc[:1000])
    y = jobs["max_rss_gb"].iloc[:1000]
    lgb = lightgbm.LGBMRegressor(n_estimators=3, verbose=-1, random_state=0).fit(X, y)
    xgb = xgboost.XGBRegressor(n_estimators=3, enable_categorical=True, tree_method="hist",
                               random_state=0).fit(X, y)
    new = pre.transform(without_target(jobs.iloc[1000:1100]).assign(component="brand-new"))
    assert np.isfinite(lgb.predict(new)).all() and np.isfinite(xgb.predict(new)).all()


def test_window_percentiles_match_numpy():
    """The 95th percentiles come from the two largest peaks: check against numpy for 1..25 peaks."""
    rng = np.random.default_rng(0)
    peaks = rng.lognormal(2.0, 1.0, 25)
    X = ModelPreprocessor().fit_transform(raw_frame(max_rss_gb=peaks))
    for i in range(1, len(peaks)):
        assert X["hist_grp_p95_5"].iloc[i] == pytest.approx(np.percentile(peaks[max(0, i - 5):i], 95))
        assert X["hist_grp_p95_20"].iloc[i] == pytest.approx(np.percentile(peaks[max(0, i - 20):i], 95))


def test_job_adjusted_level_is_closer_to_the_truth_than_the_group_mean():
    """``hist_grp_level`` (static level of the configuration plus the group's recent residual)
    tracks the true log-mean of later jobs better than the group's recent mean peak does."""
    df = generate_telemetry(8000, seed=3, with_truth=True)
    train, test = df.iloc[:7000], df.iloc[7000:]
    pre = ModelPreprocessor()
    pre.fit(train)
    X = pre.transform(test)
    truth = test["truth_mu"].to_numpy()

    def rmse(column: str) -> float:
        return float(np.sqrt(np.mean((np.log(X[column].to_numpy()) - truth) ** 2)))

    assert rmse("hist_grp_level") < 0.8 * min(rmse("hist_grp_ewm"), rmse("hist_grp_mean_5"))


def test_static_level_recovers_additive_effects_whatever_the_row_order():
    rng = np.random.default_rng(0)
    n = 4000
    a, b = rng.integers(0, 3, n), rng.integers(0, 4, n)
    x = rng.uniform(0, 20, n)
    log_peak = 1.0 + np.array([0.0, 0.5, -0.3])[a] + np.array([0.2, 0.0, 0.4, -0.1])[b] \
        + 0.3 * np.log1p(x) + rng.normal(0, 0.05, n)
    codes = {"a": (a, 3), "b": (b, 4)}
    level = StaticLevel(alpha=1e-6).fit(codes, {"x": x}, log_peak)
    fitted = level.predict({"a": a, "b": b}, {"x": x}, n)
    assert np.sqrt(np.mean((fitted - log_peak) ** 2)) < 0.06
    order = rng.permutation(n)
    shuffled = StaticLevel(alpha=1e-6).fit({"a": (a[order], 3), "b": (b[order], 4)}, {"x": x[order]},
                                           log_peak[order])
    np.testing.assert_allclose(shuffled.predict({"a": a, "b": b}, {"x": x}, n), fitted, rtol=1e-9)
    unseen = level.predict({"a": np.array([3]), "b": np.array([0])}, {"x": np.array([1.0])}, 1)
    assert np.isfinite(unseen).all()


def _level_errors(spread: float, n_groups: int, per_group: int, shrinkage=(1.0, 3.0, 10.0, 30.0),
                  memories=(), walk=0.0, choose_within="global", level_out=None, combine="choose"):
    """Fit a :class:`JobLevel` on groups whose true levels are ``spread`` apart (peaks with log
    noise 0.3, the groups' jobs interleaved in time; each level takes a random step of standard
    deviation ``walk`` (one per group, or one for all) at each of its jobs; ten fine groups make a
    coarse one); its root mean square error from the truth on the later fifth of the jobs, and the
    candidate it keeps (appended to ``level_out`` when given)."""
    rng = np.random.default_rng(0)
    fine = np.tile(np.arange(n_groups), per_group)
    steps = (rng.normal(0.0, 1.0, (per_group, n_groups)) * walk).cumsum(axis=0).ravel()
    truth = 2.0 + rng.normal(0.0, spread, n_groups)[fine] + steps
    log_peaks = truth + rng.normal(0.0, 0.3, fine.size)
    groups = {"fine": (fine, list(range(n_groups))), "coarse": (fine // 10, list(range(n_groups // 10))),
              "global": (np.zeros(fine.size, dtype=np.intp), [0])}
    cut = int(0.8 * fine.size)
    ns = np.arange(fine.size)

    def rows(r):
        return {level: (codes[r], keys) for level, (codes, keys) in groups.items()}

    level = JobLevel(alpha=0.3, shrinkage=shrinkage, memories=memories, choose_within=choose_within,
                     combine=combine)
    if level_out is not None:
        level_out.append(level)
    level.fit(rows(slice(0, cut)), ns[:cut], {}, {}, log_peaks[:cut])
    later = slice(cut, None)
    predicted = level.transform(rows(later), ns[later], {}, {}, log_peaks[later])
    kept = level.candidates_[int(np.argmin(level.errors_))]
    return float(np.sqrt(np.mean((predicted - truth[later]) ** 2))), kept


def test_job_level_shrinks_groups_of_few_peaks_towards_their_parents():
    """Groups of few noisy peaks whose true levels differ by about their noise: a shrunk candidate
    is kept, and its levels are closer to the truth than the best candidate's without shrinkage."""
    shrunk, kept = _level_errors(spread=0.3, n_groups=200, per_group=4)
    plain, _ = _level_errors(spread=0.3, n_groups=200, per_group=4, shrinkage=())
    assert kept.startswith("shrunk_")
    assert shrunk < 0.7 * plain  # 0.170 against 0.276


def test_job_level_keeps_the_static_level_where_groups_do_not_differ():
    """Groups whose true levels differ little from the static level (here the mean of all peaks):
    no group's few noisy residuals improve on it, so the static candidate is kept, and its levels
    err less than those of the fine groups' means."""
    static, kept = _level_errors(spread=0.05, n_groups=200, per_group=4, shrinkage=())
    assert kept == STATIC
    level = []
    _level_errors(spread=0.05, n_groups=200, per_group=4, shrinkage=(), level_out=level)
    errors = dict(zip(level[0].candidates_, level[0].errors_, strict=True))
    assert errors[STATIC] < 0.8 * errors["fine"]
    assert static < 0.06


def test_job_level_keeps_a_longer_memory_where_levels_stay():
    """Groups whose levels do not move: the longer-memory candidate is kept and errs less than the
    preprocessor's ``ewm_alpha`` alone."""
    long, kept = _level_errors(spread=1.0, n_groups=20, per_group=60, shrinkage=(), memories=(0.05,))
    short, _ = _level_errors(spread=1.0, n_groups=20, per_group=60, shrinkage=())
    assert kept == "fine@0.05"
    assert long < 0.7 * short
    _, kept = _level_errors(spread=1.0, n_groups=20, per_group=60, shrinkage=(), memories=(0.05,), walk=0.3)
    assert kept == "fine"


def test_job_level_chooses_the_memory_of_each_coarse_group():
    """In one coarse group the levels stay, in the other they take random steps: chosen within
    each coarse group, the first keeps the longer memory and the second the short one, and the
    levels err less than with one choice for all jobs."""
    walk = np.where(np.arange(20) < 10, 0.0, 0.1)
    kept = []
    within, _ = _level_errors(spread=1.0, n_groups=20, per_group=60, shrinkage=(), memories=(0.05,),
                              walk=walk, choose_within="coarse", level_out=kept)
    pooled, _ = _level_errors(spread=1.0, n_groups=20, per_group=60, shrinkage=(), memories=(0.05,),
                              walk=walk)
    choice = kept[0].choice_
    least = {key: kept[0].candidates_[int(np.argmin(choice.errors[row]))] for key, row in choice.index.items()}
    assert least == {0: "fine@0.05", 1: "fine"}
    assert within < 0.9 * pooled  # 0.155 against 0.181


def test_job_level_average_errs_less_where_few_jobs_choose_and_chooses_where_many_do():
    """``combine="average"``: where each coarse group's few jobs choose among close candidates, the
    candidates' weighted mean is closer to the truth than the one chosen; where one candidate is
    far best over all jobs (one choice for all), the mean is that candidate."""
    few = {"spread": 0.3, "n_groups": 200, "per_group": 4, "shrinkage": (), "memories": (0.1,),
           "choose_within": "coarse"}
    chosen, _ = _level_errors(**few)
    averaged, _ = _level_errors(**few, combine="average")
    assert averaged < 0.95 * chosen  # 0.217 against 0.237
    many = {"spread": 1.0, "n_groups": 20, "per_group": 60, "shrinkage": (), "memories": (0.05,)}
    assert _level_errors(**many, combine="average")[0] == pytest.approx(_level_errors(**many)[0], rel=1e-6)
    with pytest.raises(ValueError, match="combine"):
        _level_errors(**many, combine="mean")


def _paired_jobs(effect: float, n: int = 3000, seed: int = 0):
    """Jobs of 20 task types and 3 kinds whose log peaks have each kind's effect, plus a
    combination's own effect of standard deviation ``effect``, plus noise 0.3."""
    rng = np.random.default_rng(seed)
    task, kind = rng.integers(0, 20, n), rng.integers(0, 3, n)
    truth = 1.0 + np.array([0.0, 0.6, -0.3])[kind] + rng.normal(0.0, effect, (20, 3))[task, kind]
    return {"task": (task, 20), "kind": (kind, 3)}, truth, truth + rng.normal(0.0, 0.3, n)


def test_static_level_prices_pairs_of_categories():
    """With ``interactions`` the static level recovers each combination's own effect; without, it
    errs by about that effect. A combination not fitted gets the two features' own effects."""
    codes, truth, log_peaks = _paired_jobs(effect=0.3)
    plain = {name: c for name, (c, _) in codes.items()}
    paired = StaticLevel(interactions=(("task", "kind"),)).fit(codes, {}, log_peaks)
    alone = StaticLevel().fit(codes, {}, log_peaks)
    rmse = {name: np.sqrt(np.mean((level.predict(plain, {}, truth.size) - truth) ** 2))
            for name, level in (("paired", paired), ("alone", alone))}
    assert rmse["paired"] < 0.4 * rmse["alone"]  # 0.09 against 0.3
    assert paired.interaction_coef_["task", "kind"].shape == (20, 3)
    unseen = paired.predict({"task": np.array([25]), "kind": np.array([1])}, {}, 1)
    assert unseen[0] == pytest.approx(paired.intercept_ + paired.category_coef_["kind"][1])


def test_static_level_gives_each_category_its_own_slope():
    """With ``slopes`` the static level recovers each task type's own slope of a numeric feature
    (log1p, standardised); without, one slope for all errs by the differences. A task type not
    fitted gets the slope of all; a static level pickled before ``slopes`` predicts as without."""
    rng = np.random.default_rng(0)
    n = 4000
    task = rng.integers(0, 10, n)
    parallel = rng.choice([4.0, 8.0, 16.0, 32.0, 64.0], n)
    own = np.linspace(-0.4, 0.6, 10)  # per task type, in log peak per log1p(parallel)
    truth = 1.0 + 0.3 * task / 10 + own[task] * np.log1p(parallel)
    log_peaks = truth + rng.normal(0.0, 0.2, n)
    codes, numeric = {"task": (task, 10)}, {"parallel": parallel}
    sloped = StaticLevel(slopes=("task",)).fit(codes, numeric, log_peaks)
    alone = StaticLevel().fit(codes, numeric, log_peaks)
    rmse = {name: np.sqrt(np.mean((level.predict({"task": task}, numeric, n) - truth) ** 2))
            for name, level in (("sloped", sloped), ("alone", alone))}
    assert rmse["sloped"] < 0.2 * rmse["alone"]
    assert sloped.slope_coef_["task", "parallel"].shape == (10,)
    unseen = {"task": np.array([12])}
    for value in (4.0, 64.0):  # an unseen type: the intercept and the slope of all jobs
        x = (np.log1p(value) - sloped.numeric_["parallel"][0]) / sloped.numeric_["parallel"][1]
        expected = sloped.intercept_ + sloped.numeric_["parallel"][2] * x
        assert sloped.predict(unseen, {"parallel": np.array([value])}, 1)[0] == pytest.approx(expected)
    state = {k: v for k, v in alone.__dict__.items() if k not in ("slopes", "slope_coef_")}
    old = StaticLevel.__new__(StaticLevel)
    old.__setstate__(state)
    assert old.slopes == () and old.slope_coef_ == {}
    np.testing.assert_array_equal(old.predict({"task": task}, numeric, n),
                                  alone.predict({"task": task}, numeric, n))


@pytest.mark.parametrize(("effect", "kept"), [(0.3, True), (0.0, False)])
def test_job_level_keeps_interactions_only_where_they_lower_its_forward_errors(effect, kept):
    """Fitted block by block, the static level with a pair's effects errs less on the next jobs
    (by more than the margin) where the combinations differ, and more where they do not: the
    level keeps the pair in the first case only, and says why (``interaction_errors_``: without,
    with)."""
    codes, _, log_peaks = _paired_jobs(effect=effect)
    one = np.zeros(log_peaks.size, dtype=np.intp)
    groups = {level: (one, ["all"]) for level in ("fine", "coarse", "global")}
    level = JobLevel(alpha=0.3, interactions=(("task", "kind"),))
    level.fit(groups, np.arange(log_peaks.size), codes, {}, log_peaks)
    without, with_pairs = level.interaction_errors_
    assert bool(with_pairs < (1.0 - INTERACTION_MARGIN) * without) is kept
    assert level.interactions_ == ((("task", "kind"),) if kept else ())
    assert bool(level.static_.interaction_coef_) is kept
    assert level.static_.slopes == (("task",) if kept else ())  # the pairs' task type


def test_job_level_chooses_by_the_errors_of_the_levels_the_jobs_saw():
    """The errors that choose are those of the levels ``fit`` returns (each job's, causal), after
    the first block, which has no static level: with one group, every candidate's errors are the
    squared distances of those levels from the peaks (the static level alone, lagging the
    growth, errs more)."""
    rng = np.random.default_rng(0)
    n = 400
    log_peaks = 1.0 + 0.01 * np.arange(n) + rng.normal(0.0, 0.2, n)
    one = np.zeros(n, dtype=np.intp)
    groups = {level: (one, ["all"]) for level in ("fine", "coarse", "global")}
    level = JobLevel(alpha=0.3)
    out = level.fit(groups, np.arange(n), {}, {}, log_peaks)
    after_first = slice(int(round(LEVEL_REFITS[0] * n)), None)
    expected = np.sum((out[after_first] - log_peaks[after_first]) ** 2)
    assert level.candidates_[-1] == STATIC
    np.testing.assert_allclose(level.errors_[:-1], expected, rtol=1e-9)
    assert level.errors_[-1] > 2 * expected


def test_mean_histories_replayed_together_equal_each_replayed_alone():
    """``replay_means`` sorts the rows once for several memories of the same groups: each result,
    and each stored state after ``commit``, is that of replaying the history alone."""
    rng = np.random.default_rng(1)
    codes, values = rng.integers(0, 5, 300), rng.normal(size=300)
    values[::7] = np.nan
    keys = list("abcde")
    together = [MeanHistory(0.3), MeanHistory(0.1)]
    got = replay_means(together, codes[:200], keys, values[:200], commit=True)
    for history, (mean, count) in zip(together, got, strict=True):
        alone = MeanHistory(history.alpha)
        np.testing.assert_allclose(np.c_[mean, count], np.c_[alone.replay(codes[:200], keys, values[:200],
                                                                           commit=True)], rtol=1e-12)
        np.testing.assert_allclose(history.replay(codes[200:], keys, values[200:]),
                                   alone.replay(codes[200:], keys, values[200:]), rtol=1e-12)


def test_job_level_refuses_an_unknown_grouping_to_choose_within():
    with pytest.raises(ValueError, match="choose_within"):
        _level_errors(spread=1.0, n_groups=20, per_group=5, choose_within="component")
    with pytest.raises(ValueError, match="level_choice"):
        ModelPreprocessor(level_choice="component").fit(generate_telemetry(300, seed=0))


def test_job_level_keeps_each_groups_own_level_when_groups_differ():
    """Groups far apart with many peaks each keep their own (unshrunk) mean."""
    error, kept = _level_errors(spread=1.0, n_groups=20, per_group=60)
    assert kept == "fine"
    assert error < 0.2


def test_level_candidates_follow_the_parameters():
    """``level_shrinkage`` and ``level_memories`` give the preprocessor's level its candidates: for
    build telemetry by default the three groupings with ``ewm_alpha`` and with the longer memory
    (the schema's), chosen per coarse group, none shrunk; ``level_memories=()`` leaves one memory."""
    df = generate_telemetry(1500, seed=2)
    within = ModelPreprocessor().fit(df).level_
    assert within.candidates_ == ("fine", "coarse", "global", "fine@0.1", "coarse@0.1", "global@0.1", STATIC)
    assert within.choose_within == "coarse" and len(within.choice_.index) > 1
    one = ModelPreprocessor(level_memories=(), level_choice="global").fit(df).level_
    assert one.candidates_ == ("fine", "coarse", "global", STATIC) and len(one.choice_.index) == 1
    shrunk = ModelPreprocessor(level_shrinkage=(3,), level_memories=()).fit(df)
    assert shrunk.level_.candidates_ == ("fine", "coarse", "global", "shrunk_3", STATIC)
    level = shrunk.transform(df.iloc[-200:])["hist_grp_level"]
    assert np.isfinite(level).all() and (level > 0).all()


def test_static_level_stays_within_the_fitted_range():
    """A configuration far from every fitted one (a numeric feature ten thousand standard
    deviations out) does not extrapolate: the level stays within 10x of the fitted peaks."""
    n = 200
    x = np.r_[np.full(n - 1, 16.0), 16.1]
    log_peaks = np.log(np.linspace(1.0, 4.0, n)) + 0.01 * (x - 16.0)
    level = StaticLevel().fit({}, {"x": x}, log_peaks)
    far = level.predict({}, {"x": np.array([1e9])}, 1)
    assert far[0] == pytest.approx(log_peaks.max() + np.log(10.0))


def test_static_level_trend_follows_each_categorys_growth_up_to_its_horizon():
    """With ``trend``, each category gets its own slope in time: later jobs of a growing category
    get a higher level and those of a flat one do not, where the level without trend lags; past
    :data:`TREND_HORIZON` spans after the fitted jobs the trend stops."""
    rng = np.random.default_rng(0)
    n = 3000
    a = rng.integers(0, 2, n)
    ns = np.sort(rng.uniform(0, 1e12, n))
    growth = np.array([0.0, 0.6])  # log GB over the fitted span
    log_peaks = 1.0 + growth[a] * ns / 1e12 + rng.normal(0, 0.05, n)
    later_ns = np.full(2, 1.1e12)
    later = {"a": np.array([0, 1])}
    truth = 1.0 + growth * 1.1
    trended = StaticLevel(trend="a").fit({"a": (a, 2)}, {}, log_peaks, ns)
    plain = StaticLevel().fit({"a": (a, 2)}, {}, log_peaks, ns)
    assert np.abs(trended.predict(later, {}, 2, later_ns) - truth).max() < 0.05
    assert np.abs(plain.predict(later, {}, 2, later_ns) - truth)[1] > 0.3
    assert trended.trend_coef_[1] > trended.trend_coef_[0]
    far = trended.predict(later, {}, 2, np.full(2, 1e15))
    at_horizon = trended.predict(later, {}, 2, np.full(2, (1 + TREND_HORIZON) * ns.max() - TREND_HORIZON * ns.min()))
    np.testing.assert_allclose(far, at_horizon)
    assert plain.span_ is None and StaticLevel(trend="b").fit({"a": (a, 2)}, {}, log_peaks, ns).span_ is None


def test_level_defaults_follow_the_schema_unless_set(tmp_path):
    """Build telemetry's static level has a trend per component by default, does not read the
    request, and its candidates (with a longer memory) are chosen per coarse group;
    ``level_trend=False`` turns the trend off and ``level_request=True`` reads the request. A
    workflow trace's level reads the request, has no trend unless asked, one memory and one
    choice for all tasks. Other values are refused."""
    df = generate_telemetry(1500, seed=2)
    assert "memreq_gb" not in ModelPreprocessor().fit(df).level_.static_.numeric_
    assert "memreq_gb" in ModelPreprocessor(level_request=True).fit(df).level_.static_.numeric_
    assert ModelPreprocessor().fit(df).level_.choose_within == "coarse"
    assert ModelPreprocessor(level_choice="global").fit(df).level_.choose_within == "global"
    assert ModelPreprocessor().fit(df).level_.combine == "average"
    assert ModelPreprocessor().fit(df).level_.interactions == (("component", "makeType"), ("component", "architecture"))
    assert ModelPreprocessor(level_interactions=False).fit(df).level_.interactions == ()
    assert ModelPreprocessor(level_combine="choose").fit(df).level_.combine == "choose"
    assert ModelPreprocessor().fit(df).level_.static_.trend == "component"
    assert ModelPreprocessor().fit(df).level_.static_.span_ is not None
    assert ModelPreprocessor(level_trend=False).fit(df).level_.static_.span_ is None
    trace = load_telemetry(write_nextflow_trace(tmp_path / "trace_demo.csv", request_gb=None))
    assert ModelPreprocessor().fit(trace).level_.static_.span_ is None
    assert ModelPreprocessor().fit(trace).level_.choose_within == "global"
    assert ModelPreprocessor().fit(trace).level_.memories == ()
    assert ModelPreprocessor().fit(trace).level_.combine == "choose"
    assert ModelPreprocessor().fit(trace).level_.interactions == ()
    assert "memreq_gb" in ModelPreprocessor().fit(trace).level_.static_.numeric_
    assert "memreq_gb" not in ModelPreprocessor(level_request=False).fit(trace).level_.static_.numeric_
    assert ModelPreprocessor(level_trend=True).fit(trace).level_.static_.span_ is not None
    with pytest.raises(ValueError, match="level_trend"):
        ModelPreprocessor(level_trend="yes").fit(df)
    with pytest.raises(ValueError, match="level_request"):
        ModelPreprocessor(level_request=1).fit(df)
    with pytest.raises(ValueError, match="level_interactions"):
        ModelPreprocessor(level_interactions="yes").fit(df)
    with pytest.raises(ValueError, match="level_combine"):
        ModelPreprocessor(level_combine="mean").fit(df)


def test_a_preprocessor_pickled_before_level_request_keeps_reading_the_request():
    """A preprocessor pickled before ``level_request`` existed (format 10.0) was fitted with the
    request in its static level: restored, it says so and gives the same features."""
    df = generate_telemetry(1500, seed=2)
    fitted = ModelPreprocessor(level_request=True).fit(df.iloc[:1200])
    state = fitted.__getstate__()
    del state["level_request"]
    restored = ModelPreprocessor.__new__(ModelPreprocessor)
    restored.__setstate__(state)
    assert restored.level_request is True
    pd.testing.assert_frame_equal(restored.transform(df.iloc[1200:]), fitted.transform(df.iloc[1200:]))


def test_a_preprocessor_pickled_before_level_combine_keeps_choosing_one_candidate(monkeypatch):
    """A preprocessor and level pickled before ``combine`` and ``interactions`` existed (format
    10.1) chose one candidate and priced no pairs, and named the static level's class in
    ``features.level``: restored, they say so and give the same features."""
    df = generate_telemetry(1500, seed=2)
    fitted = ModelPreprocessor(level_combine="choose", level_interactions=False).fit(df.iloc[:1200])
    old = pickle.loads(pickle.dumps(fitted))
    del old.level_combine, old.level_interactions, old.level_.combine, old.level_.interactions
    del old.level_.interactions_, old.level_.interaction_errors_
    del old.level_.static_.interactions, old.level_.static_.interaction_coef_
    with monkeypatch.context() as patch:
        patch.setattr(StaticLevel, "__module__", "resource_prediction.features.level")
        stored = pickle.dumps(old)
    assert b"resource_prediction.features.level" in stored and b"static_level" not in stored
    restored = pickle.loads(stored)
    assert restored.level_combine == "choose" and restored.level_.combine == "choose"
    assert restored.level_interactions is False and restored.level_.interactions_ == ()
    pd.testing.assert_frame_equal(restored.transform(df.iloc[1200:]), fitted.transform(df.iloc[1200:]))


def test_a_preprocessor_pickled_before_unfilled_keeps_filling_the_request():
    """A preprocessor pickled before ``unfilled_`` existed (format 10.3) gave a job without a
    request the training median, as its models learnt: restored, it still does."""
    df = generate_telemetry(1500, seed=2)
    fitted = ModelPreprocessor().fit(df.iloc[:1200])
    old = pickle.loads(pickle.dumps(fitted))
    del old.unfilled_
    restored = pickle.loads(pickle.dumps(old))
    later = df.iloc[1200:].assign(memreq_gb=np.nan, memreq=np.nan)
    assert restored.transform(later)["memreq_gb"].eq(fitted.fill_values_["memreq_gb"]).all()
    assert fitted.transform(later)["memreq_gb"].isna().all()


def test_a_request_shared_by_every_job_is_kept(tmp_path):
    """A workflow whose tasks all request the same memory still has a configured request (for
    the guard and the request baseline): only features without a request at all are dropped,
    while other single-valued features are."""
    trace = load_telemetry(write_nextflow_trace(tmp_path / "trace.csv", request_gb=16.0))
    pre = ModelPreprocessor().fit(trace)
    assert "memreq_gb" not in pre.dropped_features_ and "attempt" in pre.dropped_features_
    assert pre.transform(trace)["memreq_gb"].eq(16.0).all()
    bare = trace.assign(memreq=np.nan, memreq_gb=np.nan)
    assert "memreq_gb" in ModelPreprocessor().fit(bare).dropped_features_
