"""Forward calibration, cold start and the do-no-harm guard of the cost-aware model (issue 11)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from resource_prediction.data import time_split
from resource_prediction.metrics import business_score
from resource_prediction.models import CostAwareRegressor
from resource_prediction.models.calibration import block_median_score
from resource_prediction.models.cost_aware import (
    GUARD_FLOORS,
    LOCATIONS,
    MAX_RATIO,
    SCALE_MONDRIAN,
    SPREAD_MONDRIAN,
    TREE_KINDS,
)
from resource_prediction.models.guard import guard_allocation
from resource_prediction.preprocessing import ModelPreprocessor
from resource_prediction.synthetic import generate_telemetry

FAST = {"n_estimators": 60, "scale_n_estimators": 30, "n_support": 64}
#: The model never has enough evidence to overrule the guard.
NO_EVIDENCE = {"guard_evidence": 10**9}


@pytest.fixture(scope="module")
def drifting():
    """Jobs whose memory grows fast; the model is fitted on the first 80 % and judged on the rest,
    as four later blocks of time."""
    raw = generate_telemetry(6000, seed=3, scenario="strong_drift")
    train, later = time_split(raw, 0.2)
    pre = ModelPreprocessor()
    X_train = pre.fit_transform(train)
    X_later = pre.transform(later)  # replay: each later job sees the peaks before it
    return X_train, train["max_rss_gb"].to_numpy(), X_later, later["max_rss_gb"].to_numpy()


@pytest.mark.parametrize("level", [0.8, 0.9, 0.95])
def test_forward_calibration_covers_its_level_on_later_blocks(drifting, level):
    X, y, X_later, y_later = drifting
    model = CostAwareRegressor(location="trees", guard=None, **FAST).fit(X, y)
    covered = y_later <= model.predict_quantile(X_later, level)
    for block in np.array_split(covered, 4):  # every later block, not only on average
        assert abs(block.mean() - level) < 0.08, (level, block.mean())
    assert abs(covered.mean() - level) < 0.04, (level, covered.mean())


def test_forward_residuals_price_the_drift_that_in_period_folds_miss(drifting):
    X, y, X_later, y_later = drifting
    same = {"location": "trees", "guard": None, "mondrian": None, **FAST}  # only the calibration differs
    forward = CostAwareRegressor(**same).fit(X, y)
    shuffled = CostAwareRegressor(calibration="shuffled", **same).fit(X, y)
    miss = {name: np.mean(y_later > m.predict_quantile(X_later, 0.95))
            for name, m in (("forward", forward), ("shuffled", shuffled))}
    assert miss["forward"] < miss["shuffled"], miss


def test_explain_reports_failure_probability_waste_and_guard(drifting):
    X, y, X_later, _ = drifting
    model = CostAwareRegressor(**FAST).fit(X, y)
    info = model.explain(X_later.iloc[:50])
    assert {"p_failure", "expected_waste_gb", "calibration_category", "guarded"} <= set(info)
    assert info["p_failure"].between(0.0, 1.0).all() and (info["expected_waste_gb"] >= 0).all()
    np.testing.assert_allclose(info["allocation_gb"], model.predict(X_later.iloc[:50]))
    assert model.location_kind_ in LOCATIONS[:-1] and model.calibration_scores_


@pytest.fixture(scope="module")
def new_task_type():
    """A component that never ran in training, with its configured request."""
    raw = generate_telemetry(4000, seed=5)
    train, later = time_split(raw, 0.1)
    new = later.copy()
    new["component"] = "brand_new_component"
    new["memreq"] = 64 * 1024.0  # MB
    new["memreq_gb"] = 64.0
    pre = ModelPreprocessor()
    X_train = pre.fit_transform(train)
    return pre, X_train, train["max_rss_gb"].to_numpy(), later, new


def test_unseen_task_type_gets_finite_allocations_within_its_prior(new_task_type):
    pre, X, y, _, new = new_task_type
    X_new = pre.transform(new.drop(columns=["max_rss", "max_rss_gb"]))
    assert (X_new["hist_grp_count"] == 0).all()
    model = CostAwareRegressor(guard=None, **FAST).fit(X, y)
    alloc = model.predict(X_new)
    assert np.all(np.isfinite(alloc))
    # never far below the peers' evidence, never beyond the documented cap
    assert alloc.min() >= y.min()
    assert alloc.max() <= MAX_RATIO * y.max()
    peers = np.quantile(y, [0.05, 0.95])
    assert np.median(alloc) > 0.5 * peers[0] and np.median(alloc) < 20 * peers[1]


@pytest.mark.parametrize("mode", ["request", "max"])
def test_guard_gives_cold_groups_their_request(new_task_type, mode):
    """Jobs of a new task type get their request (``"max"``: at least the request capped by the
    peers); young groups at least their largest peak (capped by the request); settled groups
    the model's allocation."""
    pre, X, y, later, new = new_task_type
    guarded = CostAwareRegressor(guard=mode, **NO_EVIDENCE, **FAST).fit(X, y)
    assert guarded.guard_active_
    unguarded = CostAwareRegressor(guard=None, **FAST).fit(X, y)
    X_new = pre.transform(new.drop(columns=["max_rss", "max_rss_gb"]))
    alloc, free = guarded.predict(X_new), unguarded.predict(X_new)
    expected = np.full(len(X_new), 64.0)
    if mode == "max":
        expected = np.maximum(free, np.minimum(expected, X_new["hist_grp_max_20"].to_numpy()))
    np.testing.assert_allclose(alloc, expected)
    assert guarded.explain(X_new)["guarded"].to_numpy().any()
    X_known = pre.transform(later.drop(columns=["max_rss", "max_rss_gb"]))
    count = X_known["hist_grp_count"].to_numpy()
    young, settled = (count >= 1) & (count < guarded.guard_settle), count >= guarded.guard_settle
    assert young.any() and settled.any()
    alloc, free = guarded.predict(X_known), unguarded.predict(X_known)
    seen_floor = np.minimum(X_known["memreq_gb"], 1.2 * X_known["hist_grp_max_seen"]).to_numpy()
    np.testing.assert_allclose(alloc[young], np.maximum(free, seen_floor)[young])
    np.testing.assert_allclose(alloc[settled], free[settled])


def test_guard_learns_from_the_first_finished_jobs(new_task_type):
    """Replayed with their peaks, the new group's jobs leave the guard once they have history."""
    pre, X, y, _, new = new_task_type
    guarded = CostAwareRegressor(**NO_EVIDENCE, **FAST).fit(X, y)
    unguarded = CostAwareRegressor(guard=None, **FAST).fit(X, y)
    X_replay = pre.transform(new)  # with peaks: each job sees the earlier new jobs
    count = X_replay["hist_grp_count"].to_numpy()
    assert count[0] == 0 and (count[1:] >= 1).any()
    alloc, free = guarded.predict(X_replay), unguarded.predict(X_replay)
    np.testing.assert_allclose(alloc[count == 0], 64.0)
    # its first peaks set the floor: the largest seen so far (the request caps it)
    young = (count >= 1) & (count < guarded.guard_settle)
    seen = np.minimum(64.0, guarded.guard_margin * X_replay["hist_grp_max_seen"].to_numpy())
    assert young.any() and (seen[young] < 64.0).any()
    np.testing.assert_allclose(alloc[young], np.maximum(free, seen)[young])
    np.testing.assert_allclose(alloc[count >= guarded.guard_settle], free[count >= guarded.guard_settle])


def test_guard_steps_aside_only_with_evidence(new_task_type):
    """The calibration prices the model and the guard on jobs without history; the guard stays
    unless the model was cheaper there on enough of them."""
    _, X, y, _, _ = new_task_type
    model = CostAwareRegressor(guard_evidence=1, **FAST).fit(X, y)
    evidence = model.guard_evidence_
    assert set(evidence) == set(GUARD_FLOORS) and evidence["few_peaks"]["jobs"] >= 1
    beaten = {floor: e["model_cost"] < e["guard_cost"] for floor, e in evidence.items()}
    assert model.guard_floors_ == {"few_peaks": not beaten["few_peaks"],
                                   "no_history": not (beaten["few_peaks"] and beaten["no_history"])}
    assert model.guard_active_ == any(model.guard_floors_.values())
    assert CostAwareRegressor(**NO_EVIDENCE, **FAST).fit(X, y).guard_floors_ == dict.fromkeys(GUARD_FLOORS, True)
    assert not CostAwareRegressor(guard=None, **FAST).fit(X, y).guard_active_


def test_jobs_with_a_few_peaks_do_not_vouch_for_jobs_with_none(new_task_type):
    """Where the calibration holds enough jobs with little history for the model to overrule the
    guard, but too few without any history, a new group's jobs keep their request (and a task
    type never fitted on, its first peaks' floor) while the jobs of young groups get the model's
    allocation."""
    pre, X, y, later, new = new_task_type
    counted = CostAwareRegressor(guard_evidence=1, **FAST).fit(X, y).guard_evidence_
    n_none, n_little = counted["no_history"]["jobs"], counted["few_peaks"]["jobs"]
    assert n_none < n_little and counted["few_peaks"]["model_cost"] < counted["few_peaks"]["guard_cost"]
    model = CostAwareRegressor(guard_evidence=(n_none + n_little) // 2, **FAST).fit(X, y)
    assert model.guard_floors_ == {"no_history": True, "few_peaks": False}
    free = CostAwareRegressor(guard=None, **FAST).fit(X, y)
    X_new = pre.transform(new.drop(columns=["max_rss", "max_rss_gb"]))
    np.testing.assert_allclose(model.predict(X_new), 64.0)  # no peak yet: the request
    X_known = pre.transform(later.drop(columns=["max_rss", "max_rss_gb"]))
    young = X_known["hist_grp_count"].between(1, model.guard_settle - 1).to_numpy()
    assert young.any()
    np.testing.assert_allclose(model.predict(X_known)[young], free.predict(X_known)[young])
    assert not model.explain(X_known)["guarded"].to_numpy()[young].any()
    # a task type the model was never fitted on has no evidence either: after its first peaks
    # its jobs keep at least the smaller of their request and 1.2 times its largest peak
    X_replay = pre.transform(new)
    later_jobs = X_replay["hist_grp_count"].to_numpy() >= 1
    assert model.unknown_task_ is not None and later_jobs.any()
    seen = np.minimum(64.0, model.guard_margin * X_replay["hist_grp_max_seen"].to_numpy())
    np.testing.assert_allclose(model.predict(X_replay)[later_jobs],
                               np.maximum(free.predict(X_replay), seen)[later_jobs])


def test_a_task_type_unseen_in_fit_keeps_the_floor_of_a_new_group():
    """However many peaks its group has shown since, a job of a task type the model was never
    fitted on (the preprocessor's ``unknown``) gets at least the smaller of its request and 1.2
    times its group's largest peak, while the guard holds; a known type does not."""
    rng = np.random.default_rng(4)
    n = 3000
    vocabulary = ["a", "b", "unknown"]
    X = pd.DataFrame({"component": pd.Categorical(rng.choice(["a", "b"], n), categories=vocabulary),
                      "hist_grp_count": 100.0, "memreq_gb": 64.0, "hist_grp_max_seen": 12.0,
                      "hist_grp_max_20": 12.0})
    y = 10.0 * rng.lognormal(0.0, 0.1, n)
    model = CostAwareRegressor(**FAST, **NO_EVIDENCE).fit(X, y)
    assert model.guard_active_ and model.unknown_task_ == 2
    grown = X.iloc[:1].assign(hist_grp_max_seen=30.0)  # the group's peaks reached 30 GB
    unseen = grown.assign(component=pd.Categorical(["unknown"], categories=vocabulary))
    assert model.predict(unseen)[0] >= min(64.0, 1.2 * 30.0) > model.predict(grown)[0]
    assert model.explain(unseen)["guarded"].iloc[0] and not model.explain(grown)["guarded"].iloc[0]
    # with as many peaks as a settled group, that floor is also its ceiling (guard_cap): the
    # model's residual shape comes from other types, the type's own peaks are the evidence
    small = unseen.assign(hist_grp_max_seen=7.0)
    uncapped = CostAwareRegressor(**FAST, **NO_EVIDENCE, guard_cap=False).fit(X, y)
    assert uncapped.predict(small)[0] > 1.2 * 7.0
    assert model.predict(small)[0] == pytest.approx(1.2 * 7.0)
    assert model.explain(small)["guarded"].iloc[0]
    young = small.assign(hist_grp_count=float(model.guard_settle - 1))  # fewer peaks: no ceiling
    assert model.predict(young)[0] == pytest.approx(uncapped.predict(young)[0])


@pytest.mark.parametrize(("mode", "expected"), [
    ("max", [6.0, 3.0, 2.0, 6.0, 5.0]),  # request capped by the peers; peers alone without request
    ("request", [8.0, 1.0, 2.0, 5.0, 5.0]),  # without a request the model's allocation stays
])
def test_guard_allocation_rules(mode, expected):
    alloc = np.array([2.0, 3.0, 2.0, 5.0, 5.0])
    count = np.array([0, 1, 9, np.nan, 0])
    request = np.array([8.0, 1.0, 8.0, np.nan, np.nan])
    peers = np.array([6.0, 6.0, 6.0, 6.0, np.nan])
    out, changed = guard_allocation(alloc, count, request, peers, mode=mode, min_history=3)
    np.testing.assert_allclose(out, expected)
    np.testing.assert_array_equal(changed, np.asarray(expected) != alloc)
    # young groups (3 <= count < 12): at least min(request, seen); the request caps the seen peak
    seen = np.array([9.0, 9.0, 7.0, 9.0, 9.0])
    out, _ = guard_allocation(alloc, count, request, peers, mode=mode, min_history=3,
                              seen_gb=seen, settle_history=12)
    np.testing.assert_allclose(out[2], 7.0)
    np.testing.assert_allclose(out[[0, 1, 3, 4]], np.asarray(expected)[[0, 1, 3, 4]])
    # a settled group marked unsettled (a task type unseen in fit) keeps that floor
    out, changed = guard_allocation(np.array([2.0, 2.0]), np.array([30, 30]), np.array([8.0, 8.0]),
                                    mode=mode, min_history=3, seen_gb=np.array([7.0, 7.0]),
                                    settle_history=12, unsettled=np.array([True, False]))
    np.testing.assert_allclose(out, [7.0, 2.0])
    np.testing.assert_array_equal(changed, [True, False])
    # with cap_history, an unsettled row with that many peaks gets at most that floor too
    out, changed = guard_allocation(np.array([9.0, 9.0, 9.0]), np.array([30, 5, 30]),
                                    np.array([8.0, 8.0, 8.0]), mode=mode, min_history=3,
                                    seen_gb=np.array([7.0, 7.0, 7.0]), settle_history=12,
                                    unsettled=np.array([True, True, False]), cap_history=12)
    np.testing.assert_allclose(out, [7.0, 9.0, 9.0])
    np.testing.assert_array_equal(changed, [True, False, False])
    # without the floor of a few peaks (settle_history 0) only the unsettled row keeps it
    out, _ = guard_allocation(np.array([2.0, 2.0]), np.array([5, 5]), np.array([8.0, 8.0]),
                              mode=mode, min_history=3, seen_gb=np.array([7.0, 7.0]),
                              settle_history=0, unsettled=np.array([True, False]))
    np.testing.assert_allclose(out, [7.0, 2.0])
    with pytest.raises(ValueError, match="guard must be one of"):
        guard_allocation(alloc, count, request, peers, mode="always")


def test_auto_keeps_the_candidate_with_the_best_forward_score(drifting):
    """``location="auto"`` calibrates every kind with every Mondrian candidate: each kind keeps
    the Mondrian split whose allocations scored best on the later calibration rows; of the trees'
    two losses the one with the lower median score over blocks of time competes with the flat
    location."""
    X, y, _, _ = drifting
    model = CostAwareRegressor(guard=None, **FAST).fit(X, y)
    scores = model.calibration_scores_
    assert {kind for kind, _ in scores} == {"trees", "huber", "flat"}
    assert {m for _, m in scores} == {"hist_grp_count", None, "component", SPREAD_MONDRIAN}
    assert set(model.location_scores_) == {"trees", "huber", "flat"}
    blocks = model.location_block_scores_
    tree = min(TREE_KINDS, key=model.location_scores_.get)
    wins = blocks[tree] < blocks["flat"]
    assert np.median(blocks[tree]) == pytest.approx(model.location_scores_[tree])
    trees_clearly_better = model.location_scores_[tree] < (
        (1 - model.trees_margin) * model.location_scores_["flat"]) and 2 * wins.sum() > wins.size
    assert model.location_kind_ == (tree if trees_clearly_better else "flat")
    kind_scores = {m: v for (kind, m), v in scores.items() if kind == model.location_kind_}
    assert model.mondrian_ == min(kind_scores, key=kind_scores.get)


def test_a_near_tie_keeps_the_flat_location(drifting):
    """The trees replace the flat location only when they score clearly lower: with a margin
    larger than their lead the flat location is kept."""
    X, y, _, _ = drifting
    model = CostAwareRegressor(guard=None, **FAST).fit(X, y)
    scores = model.location_scores_
    tree = model.location_kind_
    assert tree in TREE_KINDS and scores[tree] < scores["flat"]
    lead = 1 - scores[tree] / scores["flat"]
    cautious = CostAwareRegressor(guard=None, trees_margin=min(lead + 0.05, 0.99), **FAST).fit(X, y)
    assert cautious.location_kind_ == "flat"
    with pytest.raises(ValueError, match="trees_margin"):
        CostAwareRegressor(trees_margin=1.0).fit(X, y)


def test_the_huber_location_is_not_pulled_by_outliers():
    """Where one job in ten is an outlier far above the rest, squared-error trees move their
    location towards the outliers; the Huber loss keeps it near the other jobs' log-mean (and
    both are exact where there are no outliers)."""
    rng = np.random.default_rng(0)
    x = rng.random(3000)
    log_y = 1 + x + rng.normal(0, 0.1, x.size)
    log_y[(x < 0.5) & (rng.random(x.size) < 0.1)] += 1.5
    grid = np.linspace(0.02, 0.98, 49)[:, None]
    errors = {}
    for kind in ("trees", "huber"):
        model = CostAwareRegressor(location=kind, guard=None, mondrian=None, round_grid=0, **FAST)
        error = np.abs(model.fit(x[:, None], np.exp(log_y)).location_model_.predict(grid) - 1 - grid[:, 0])
        errors[kind] = error[grid[:, 0] < 0.5].mean(), error[grid[:, 0] > 0.5].mean()
    assert errors["huber"][0] < min(0.08, 0.5 * errors["trees"][0]), errors
    assert max(errors["trees"][1], errors["huber"][1]) < 0.03, errors


def test_trees_relative_to_the_level_follow_growth_beyond_the_training_peaks():
    """Trees alone predict no more than the peaks they were fitted on; relative to the group's
    level (the ``offset``) they follow memory that keeps growing after training."""
    rng = np.random.default_rng(0)
    n = 3000
    level = np.r_[np.geomspace(1.0, 10.0, n), np.geomspace(10.0, 40.0, 500)]  # GB, growing
    X = pd.DataFrame({"hist_grp_level": level, "hist_grp_count": np.arange(level.size, dtype=float)})
    y = level * rng.lognormal(0.0, 0.1, level.size)
    train, later = slice(0, n), slice(n, None)
    ratios = {}
    for offset in ("hist_grp_level", None):
        model = CostAwareRegressor(location="trees", offset=offset, guard=None, **FAST)
        model.fit(X.iloc[train], y[train])
        ratios[offset] = np.median(model.predict_quantile(X.iloc[later], 0.5) / y[later])
    assert 0.9 < ratios["hist_grp_level"] < 1.1, ratios
    # Without it the trees stay near the largest training peak (~11 GB) while the jobs reach 40
    # GB; only the forward residuals (drift priced in) lift them a little.
    assert ratios[None] < 0.8, ratios


def test_the_trees_also_read_the_history_relative_to_the_level(drifting):
    """Each ``relative`` feature present is one more column of the trees (its log ratio to the
    offset); without an offset, or with ``relative=()``, the trees read ``X`` as it is."""
    X, y, X_later, _ = drifting
    found = [name for name in CostAwareRegressor().relative if name in X.columns]
    assert len(found) >= 8
    widths = {}
    for label, params in {"relative": {}, "plain": {"relative": ()}, "no offset": {"offset": None}}.items():
        model = CostAwareRegressor(location="trees", guard=None, **FAST, **params).fit(X, y)
        widths[label] = model.location_model_.n_features_in_
        assert np.isfinite(model.predict(X_later)).all()
    assert widths == {"relative": X.shape[1] + len(found), "plain": X.shape[1], "no offset": X.shape[1]}


def test_the_trees_stop_where_their_forward_predictions_were_best():
    """The number of boosting rounds (location and scale) is the one whose held-out predictions
    erred least: none where the features carry no signal, many where they carry a strong one;
    ``round_grid=0`` keeps every round."""
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"a": rng.normal(size=1500), "b": rng.normal(size=1500)})
    noise = rng.lognormal(0.0, 0.3, 1500)
    params = {"location": "trees", "guard": None, "n_estimators": 100, "n_support": 64, "extend_rounds": 1}
    noisy = CostAwareRegressor(**params).fit(X, 10.0 * noise)
    signal = CostAwareRegressor(**params).fit(X, np.exp(2.0 + 1.5 * X["a"].to_numpy()) * noise)
    assert noisy.n_rounds_[0] <= 10 < signal.n_rounds_[0], (noisy.n_rounds_, signal.n_rounds_)
    assert signal.round_errors_[signal.n_rounds_[0]] < 0.2 * signal.round_errors_[0]
    for model in (noisy, signal):
        errors = model.round_errors_
        assert set(errors) == set(range(0, 101, 10)) and errors[model.n_rounds_[0]] == min(errors.values())
        trees = getattr(model.location_model_, "n_estimators", 0)
        assert trees == model.n_rounds_[0] or (model.n_rounds_[0] == 0 and trees == 0)
    every = CostAwareRegressor(**params, round_grid=0).fit(X, 10.0 * noise)
    assert every.n_rounds_ == (100, every.scale_n_estimators)
    assert every.location_model_.n_estimators == 100


@pytest.mark.parametrize("extend", [1, 2, 4])
def test_trees_still_improving_at_their_last_round_are_grown_further(extend):
    """Where the forward predictions are best after the last of ``n_estimators`` rounds, the trees
    are grown twice as far, up to ``extend_rounds`` times; the grid keeps its step."""
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"a": rng.normal(size=1500), "b": rng.normal(size=1500)})
    y = np.exp(2.0 + 1.5 * X["a"].to_numpy() + np.sin(3 * X["b"].to_numpy())) * rng.lognormal(0.0, 0.05, 1500)
    model = CostAwareRegressor(location="trees", guard=None, n_estimators=10, learning_rate=0.05,
                               n_support=64, extend_rounds=extend).fit(X, y)
    assert model.n_rounds_[0] == 10 * extend  # still improving at every limit
    assert set(model.round_errors_) == set(range(0, 10 * extend + 1))
    assert model.location_model_.n_estimators == 10 * extend


def test_a_task_type_with_two_valued_peaks_gets_its_own_residual_shape():
    """Where one task type's large mode is rare, another's common and a third has none, one pooled
    shape fits none of them: the task type's Mondrian candidate wins the calibration, and each
    type's allocation covers its own peaks as the cost optimum asks."""
    rng = np.random.default_rng(2)
    n = 6000
    task = rng.choice(["steady", "rare", "common"], n)
    large = {"steady": 0.0, "rare": 0.15, "common": 0.6}
    big = rng.random(n) < np.vectorize(large.get)(task)
    X = pd.DataFrame({"component": pd.Categorical(task), "x": rng.normal(size=n)})
    y = 10.0 * np.where(big, 3.0, 1.0) * rng.lognormal(0.0, 0.05, n)
    model = CostAwareRegressor(location="trees", guard=None, **FAST).fit(X, y)
    assert model.mondrian_ == "component"
    pooled = CostAwareRegressor(location="trees", guard=None, mondrian=None, **FAST).fit(X, y)
    X_new = X.iloc[:3].assign(component=pd.Categorical(["steady", "rare", "common"],
                                                       categories=X["component"].cat.categories))
    cost = {}
    for name, m in (("task", model), ("pooled", pooled)):
        m.set_params(penalty=5.0)
        cost[name] = business_score(m.predict(X), y)
    assert cost["task"] < cost["pooled"], cost
    alloc = model.predict(X_new)
    assert alloc[0] < 15.0 and alloc[2] > 30.0, alloc  # steady: near 10 GB; common: covers 30 GB


@pytest.mark.parametrize("late_share", [0.08, 0.02])
def test_a_task_types_own_quantiles_hold_only_the_errors_of_models_that_knew_it(late_share):
    """A type first run in the last forward block was predicted by models that had never seen it:
    its residuals are cold-start errors, so the calibration keeps them in the pooled quantiles
    only, while a type run throughout has its own. The final model has seen the late type: with
    enough of its jobs after its first ``min_calibration`` (320 jobs), its own residuals on them
    give its quantiles (``fitted_categories_``) and its allocation covers its two-valued peaks,
    which the pooled shape of the steady types does not; with too few (80), it keeps the pooled."""
    rng = np.random.default_rng(3)
    n = 4000
    task = np.where(np.arange(n) < int((1 - late_share) * n), rng.choice(["old", "steady"], n), "late")
    X = pd.DataFrame({"component": pd.Categorical(task), "x": rng.normal(size=n)})
    large = (task == "late") & (rng.random(n) < 0.5)
    y = np.where(task == "late", 40.0, 10.0) * np.where(large, 3.0, 1.0) * rng.lognormal(0.0, 0.1, n)
    model = CostAwareRegressor(location="trees", mondrian="component", guard=None, **FAST).fit(X, y)
    codes = {name: i + 1 for i, name in enumerate(model.categories_[0])}
    counts = model.calibration_counts_
    assert counts[codes["late"]] == 0 and counts[codes["old"]] >= model.min_calibration, counts
    late_row, pooled_row = model.residual_quantiles_[codes["late"]], model.residual_quantiles_[0]
    alloc = model.predict(X[task == "late"].iloc[:1])[0]
    if late_share > 0.05:
        assert model.fitted_categories_.tolist() == [codes["late"]]
        assert alloc > 120.0, alloc  # the large mode (120 GB) is as common as the small one
    else:
        assert model.fitted_categories_.size == 0
        np.testing.assert_array_equal(late_row, pooled_row)


def test_scale_mondrian_sorts_jobs_by_their_predicted_spread(drifting):
    """With the predicted scale as Mondrian feature each tercile of the calibration's scales keeps
    its own residual quantiles, and a wider predicted scale never falls in a lower category."""
    X, y, X_later, _ = drifting
    model = CostAwareRegressor(location="trees", mondrian=SCALE_MONDRIAN, guard=None, **FAST).fit(X, y)
    assert model.mondrian_ == SCALE_MONDRIAN and model.residual_quantiles_.shape[0] == 4
    assert (model.calibration_counts_[1:] >= model.min_calibration).all()
    info = model.explain(X_later).sort_values("log_scale")
    assert set(info["calibration_category"]) <= {1, 2, 3}
    assert (np.diff(info["calibration_category"].to_numpy()) >= 0).all()
    # the categories differ in shape, not only in a common scale
    assert not np.allclose(model.residual_quantiles_[1], model.residual_quantiles_[3])


def _steady_and_spiky(n: int = 3000, seed: int = 0):
    """Two task types in a mix that moves over time: ``steady`` peaks repeat one value (to 0.3 %),
    ``spiky`` peaks are small with a rare large one; the group's recent maximum and mean as the
    preprocessor gives them (of the peaks before each job)."""
    rng = np.random.default_rng(seed)
    task = np.where(rng.random(n) < np.linspace(0.9, 0.2, n), "steady", "spiky")
    y = np.where(task == "steady", 10.0 * rng.uniform(0.997, 1.003, n),
                 np.where(rng.random(n) < 0.05, 20.0, 1.0) * rng.lognormal(0.0, 0.3, n))
    past = pd.Series(y).groupby(task)
    X = pd.DataFrame({
        "component": pd.Categorical(task),
        "hist_grp_max_20": past.transform(lambda s: s.shift().rolling(20, min_periods=1).max()),
        "hist_grp_mean_5": past.transform(lambda s: s.shift().rolling(5, min_periods=1).mean()),
        "hist_grp_count": past.cumcount().astype(float),
    })
    return X, y, task


def test_the_spread_mondrian_gives_repeating_and_swinging_peaks_their_own_margins():
    """Sorted by how far their recent peaks spread below the maximum, the repeating type's jobs
    keep their maximum and the swinging type's get a fraction of theirs: the pooled quantiles
    give both the same ratio, wasting on the one what the other needs."""
    X, y, task = _steady_and_spiky()
    fit, later = slice(None, 2400), slice(2400, None)
    spread = CostAwareRegressor(location="flat", mondrian=SPREAD_MONDRIAN, guard=None, **FAST).fit(X[fit], y[fit])
    pooled = CostAwareRegressor(location="flat", mondrian=None, guard=None, **FAST).fit(X[fit], y[fit])
    assert spread.mondrian_ == SPREAD_MONDRIAN and spread.residual_quantiles_.shape[0] == 4
    category = spread.explain(X[later])["calibration_category"].to_numpy()
    steady = task[later] == "steady"
    assert set(category[steady]) == {1} and set(category[~steady]) <= {2, 3}
    ratio = spread.predict(X[later]) / X["hist_grp_max_20"].to_numpy()[later]
    assert np.median(ratio[steady]) >= 1.0 and np.median(ratio[~steady]) < 0.5
    scores = [business_score(m.predict(X[later]), y[later]) for m in (spread, pooled)]
    assert scores[0] < 0.5 * scores[1], scores
    no_history = X[later].assign(hist_grp_max_20=np.nan)
    assert (spread.explain(no_history)["calibration_category"] == 0).all()  # pooled
    without = X.drop(columns="hist_grp_mean_5")
    assert CostAwareRegressor(location="flat", guard=None, **FAST).fit(
        without[fit], y[fit]).mondrian_ != SPREAD_MONDRIAN  # not a candidate without its features
    with pytest.raises(ValueError, match="spread_edges"):
        CostAwareRegressor(spread_edges=(0.5, 0.05)).fit(X[fit], y[fit])


def test_block_median_score_is_not_decided_by_one_stretch():
    """A candidate that is better on most blocks of time wins the median score, even when one
    bad block makes its pooled score worse; the blocks follow ``order``, not the row order."""
    rng = np.random.default_rng(0)
    y = rng.lognormal(0.0, 0.2, 400)
    steady = 1.5 * y  # 50 % waste everywhere
    mostly_tight = 1.1 * y
    mostly_tight[300:] = 0.9 * y[300:]  # the last block fails every job
    assert business_score(mostly_tight, y) > business_score(steady, y)
    assert block_median_score(mostly_tight, y, np.arange(400), 5.0) < block_median_score(
        steady, y, np.arange(400), 5.0
    )
    shuffled = rng.permutation(400)
    assert block_median_score(mostly_tight[shuffled], y[shuffled], shuffled, 5.0) == \
        pytest.approx(block_median_score(mostly_tight, y, np.arange(400), 5.0))


@pytest.mark.parametrize(("param", "message"), [
    ({"widen": 0.0}, "widen must be positive"),
    ({"recency": -1.0}, "recency must be >= 0"),
    ({"guard_margin": 0.0}, "guard_margin must be positive"),
    ({"location": "both"}, "location must be one of"),
    ({"huber_delta": 0.0}, "huber_delta must be positive"),
    ({"extend_rounds": 0}, "extend_rounds must be at least 1"),
])
def test_bad_parameters_are_refused_by_name(drifting, param, message):
    X, y, _, _ = drifting
    with pytest.raises(ValueError, match=message):
        CostAwareRegressor(**param, **FAST).fit(X.iloc[:200], y[:200])


def test_a_model_pickled_before_the_huber_loss_predicts_as_before(drifting):
    """A cost-aware model pickled before ``huber_delta`` existed (format 10.0) restores with the
    default and predicts as it did."""
    X, y, X_later, _ = drifting
    fitted = CostAwareRegressor(location="trees", **FAST).fit(X, y)
    state = fitted.__getstate__()
    del state["huber_delta"], state["extend_rounds"], state["guard_cap"], state["fitted_categories_"]
    restored = CostAwareRegressor.__new__(CostAwareRegressor)
    restored.__setstate__(state)
    assert restored.get_params()["huber_delta"] == 1.0 and restored.extend_rounds == 1
    assert restored.guard_cap is False  # format 10.2 models never capped a new type's jobs
    assert restored.fitted_categories_.size == 0  # format 10.5: no late type's own quantiles
    np.testing.assert_array_equal(restored.predict(X_later), fitted.predict(X_later))


def test_the_guard_holds_without_a_request():
    """Data without a configured request keep the guard: a task type unseen in fit gets at least
    1.2 times its group's largest peak, and once settled exactly that."""
    rng = np.random.default_rng(4)
    n = 3000
    vocabulary = ["a", "b", "unknown"]
    X = pd.DataFrame({"component": pd.Categorical(rng.choice(["a", "b"], n), categories=vocabulary),
                      "hist_grp_count": 100.0, "hist_grp_max_seen": 12.0, "hist_grp_max_20": 12.0})
    y = 10.0 * rng.lognormal(0.0, 0.1, n)
    model = CostAwareRegressor(**FAST, **NO_EVIDENCE).fit(X, y)
    assert model.request_index_ is None and model.guard_active_
    grown = X.iloc[:1].assign(hist_grp_max_seen=30.0)  # a settled group whose peaks reached 30 GB
    unseen = grown.assign(component=pd.Categorical(["unknown"], categories=vocabulary))
    assert model.predict(unseen)[0] == pytest.approx(1.2 * 30.0)
    assert model.predict(grown)[0] < 1.2 * 30.0
    small = unseen.assign(hist_grp_max_seen=7.0)
    assert model.predict(small)[0] == pytest.approx(1.2 * 7.0)
    assert model.explain(small)["guarded"].iloc[0] and not model.explain(grown)["guarded"].iloc[0]
