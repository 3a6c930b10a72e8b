"""DeployableModel: raw rows in, GB out; metadata; safe save and load."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest

from resource_prediction.data import load_telemetry, save_telemetry, time_split
from resource_prediction.deployable import (
    FORMAT_VERSION,
    MAGIC,
    SIGNING_KEY_ENV,
    ArtifactError,
    DeployableModel,
    data_fingerprint,
)
from resource_prediction.synthetic import generate_telemetry

FAST_LGBM = {"booster__n_estimators": 40, "booster__learning_rate": 0.1}
UNPICKLED: list[str] = []


def _record_unpickling(tag: str) -> str:
    UNPICKLED.append(tag)
    return tag


class _Trap:
    """Unpickling this object calls :func:`_record_unpickling`: shows whether a payload was loaded."""

    def __reduce__(self):
        return (_record_unpickling, ("trap",))


@pytest.fixture(scope="module")
def split():
    return time_split(generate_telemetry(3000, seed=3), 0.10)


@pytest.fixture(scope="module")
def lgbm(split):
    return DeployableModel.train("lightgbm_regression", split[0], params=FAST_LGBM, seed=1)


@pytest.fixture(autouse=True)
def _no_signing_key(monkeypatch):
    monkeypatch.delenv(SIGNING_KEY_ENV, raising=False)


def _without_target(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=["max_rss", "max_rss_gb"], errors="ignore")


def test_predict_one_positive_value_per_row(lgbm, split):
    holdout = _without_target(split[1])
    alloc = lgbm.predict(holdout)
    assert alloc.shape == (len(holdout),)
    assert np.all(np.isfinite(alloc)) and np.all(alloc > 0)


def test_predict_keeps_the_rows_order(lgbm, split):
    holdout = _without_target(split[1])
    order = np.random.default_rng(0).permutation(len(holdout))
    np.testing.assert_allclose(lgbm.predict(holdout.iloc[order]), lgbm.predict(holdout)[order])


def test_plain_read_csv_frame_works_like_load_telemetry(lgbm, split, tmp_path):
    path = save_telemetry(split[1], tmp_path / "holdout.csv")
    plain = pd.read_csv(path, sep=";")
    loaded = load_telemetry(path)
    np.testing.assert_allclose(lgbm.predict(plain), lgbm.predict(loaded))
    assert data_fingerprint(plain) == data_fingerprint(loaded)
    assert data_fingerprint(plain) != data_fingerprint(plain.iloc[1:])


def test_train_from_plain_csv_frame(split, tmp_path):
    path = save_telemetry(split[0], tmp_path / "train.csv")
    model = DeployableModel.train("global_quantile", pd.read_csv(path, sep=";"))
    expected = np.quantile(split[0]["max_rss_gb"], 0.95)
    np.testing.assert_allclose(model.predict(split[1]), expected, rtol=1e-9)


def test_replay_uses_earlier_peaks_of_the_frame(lgbm, split):
    holdout = split[1]
    replayed = lgbm.predict(holdout)  # with max_rss: each job sees the earlier holdout peaks
    blind = lgbm.predict(_without_target(holdout))
    assert replayed[0] == pytest.approx(blind[0])  # the first job has nothing earlier to see
    assert not np.allclose(replayed, blind)


def test_observe_feeds_the_history(split):
    train, holdout = split
    model = DeployableModel.train("group_percentile", train)
    before = model.predict(_without_target(holdout))
    n_before = model.preprocessor.n_history_jobs_
    model.observe(holdout.iloc[:150])
    assert model.preprocessor.n_history_jobs_ == n_before + 150
    after = model.predict(_without_target(holdout))
    assert not np.allclose(before, after)


def test_model_info(lgbm, split):
    info = lgbm.get_model_info()
    json.dumps(info)  # JSON-serialisable
    assert info["family"] == "lightgbm_regression" and info["task_type"] == "regression"
    assert info["params"] == FAST_LGBM and info["seed"] == 1
    assert info["estimator_params"]["random_state"] == 1
    assert info["features"] == list(lgbm.preprocessor.feature_names_)
    training = info["training"]
    assert training["n_rows"] == len(split[0])
    assert pd.Timestamp(training["time_start"]) == split[0]["time"].min()
    assert pd.Timestamp(training["time_end"]) == split[0]["time"].max()
    assert training["data_sha256"] == data_fingerprint(split[0])
    assert info["format_version"] == FORMAT_VERSION
    assert {"scikit-learn", "lightgbm", "xgboost", "resource_prediction"} <= set(info["library_versions"])
    assert info["holdout_metrics"] is None


def test_evaluate_records_holdout_metrics(split):
    model = DeployableModel.train("configured_request", split[0])
    metrics = model.evaluate(split[1], record=True)
    assert model.get_model_info()["holdout_metrics"]["business_score"] == pytest.approx(
        metrics["business_score"]
    )
    model.set_holdout_metrics({"business_score": 1.5})
    assert model.holdout_metrics == {"business_score": 1.5}


def test_explain_classification_and_ensemble(split):
    train, holdout = split
    clf = DeployableModel.train(
        "lightgbm_classification", train, params={"classifier__n_estimators": 20, "n_bins": 5}
    )
    info = clf.explain(holdout.iloc[:10])
    assert {"bin", "bin_lower_gb", "bin_upper_gb", "confidence"} <= set(info.columns)
    assert list(info.index) == list(holdout.index[:10])
    np.testing.assert_allclose(info["allocation_gb"], clf.predict(holdout.iloc[:10]))

    qe = DeployableModel.train(
        "qe_regression", train, params={"hgb__max_iter": 20, "xgb__n_estimators": 20, "alpha": 0.9}
    )
    info = qe.explain(holdout.iloc[:10])
    assert (info["alpha"] == 0.9).all() and "safety" in info.columns


def test_lr_family_gets_one_hot_features(split):
    model = DeployableModel.train("lr_classification", split[0], params={"classifier__max_iter": 100, "n_bins": 4})
    assert model.preprocessor.encoding == "onehot"
    assert model.get_model_info()["categorical_features"] == []


def test_unknown_family(split):
    with pytest.raises(KeyError, match="known families"):
        DeployableModel.train("nope", split[0])


# ---------------------------------------------------------------------- persistence
def test_save_load_round_trip(lgbm, split, tmp_path):
    path = lgbm.save(tmp_path / "model.pkl")
    loaded = DeployableModel.load(path)
    np.testing.assert_array_equal(loaded.predict(split[1]), lgbm.predict(split[1]))
    assert loaded.get_model_info() == lgbm.get_model_info()
    header = DeployableModel.read_header(path)
    assert header["format_version"] == FORMAT_VERSION and header["signature"] is None


def test_only_pkl_paths(lgbm, tmp_path):
    with pytest.raises(ValueError, match=".pkl"):
        lgbm.save(tmp_path / "model.joblib")


def _write(path, header: dict, payload: bytes) -> None:
    path.write_bytes(MAGIC + json.dumps(header).encode() + b"\n" + payload)


def _header_and_payload(path):
    data = path.read_bytes()
    header_line, payload = data[len(MAGIC):].split(b"\n", 1)
    return json.loads(header_line), payload


def test_tampered_payload_is_refused(lgbm, tmp_path):
    path = lgbm.save(tmp_path / "model.pkl")
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="SHA-256"):
        DeployableModel.load(path)


def test_nothing_is_unpickled_before_the_checks(lgbm, tmp_path):
    header, _ = _header_and_payload(lgbm.save(tmp_path / "model.pkl"))
    trap = pickle.dumps(_Trap())
    path = tmp_path / "trap.pkl"
    UNPICKLED.clear()

    _write(path, header, trap)  # checksum of another payload
    with pytest.raises(ArtifactError, match="SHA-256"):
        DeployableModel.load(path)

    import hashlib

    matching = {**header, "payload_bytes": len(trap), "payload_sha256": hashlib.sha256(trap).hexdigest()}
    _write(path, {**matching, "format_version": "1.0"}, trap)  # incompatible (older) format
    major = FORMAT_VERSION.split(".")[0]
    with pytest.raises(ArtifactError, match=rf"format 1.0 .* reads format {major}\.x"):
        DeployableModel.load(path)
    assert UNPICKLED == []

    _write(path, matching, trap)  # control: a consistent file is unpickled, then rejected by type
    with pytest.raises(ArtifactError, match="not a DeployableModel"):
        DeployableModel.load(path)
    assert UNPICKLED == ["trap"]


def test_not_a_model_file(tmp_path):
    path = tmp_path / "other.pkl"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ArtifactError, match="magic"):
        DeployableModel.load(path)
    with pytest.raises(FileNotFoundError):
        DeployableModel.load(tmp_path / "missing.pkl")


def test_signed_artifacts(lgbm, split, tmp_path, monkeypatch):
    monkeypatch.setenv(SIGNING_KEY_ENV, "secret-1")
    path = lgbm.save(tmp_path / "signed.pkl")
    assert DeployableModel.read_header(path)["signature"]
    np.testing.assert_array_equal(DeployableModel.load(path).predict(split[1]), lgbm.predict(split[1]))

    monkeypatch.setenv(SIGNING_KEY_ENV, "another-key")
    with pytest.raises(ArtifactError, match="invalid signature"):
        DeployableModel.load(path)

    monkeypatch.delenv(SIGNING_KEY_ENV)
    with pytest.raises(ArtifactError, match="is signed"):
        DeployableModel.load(path)
    unsigned = lgbm.save(tmp_path / "unsigned.pkl")

    monkeypatch.setenv(SIGNING_KEY_ENV, "secret-1")
    with pytest.raises(ArtifactError, match="missing signature"):
        DeployableModel.load(unsigned)
