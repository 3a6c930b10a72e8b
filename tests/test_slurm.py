"""Slurm accounting (sacct) as telemetry: every ReqMem / MaxRSS / State form, steps, bad rows, samples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import SLURM_FIXTURES

from resource_prediction.data import load_telemetry, time_split
from resource_prediction.deployable import DeployableModel
from resource_prediction.preprocessing import ModelPreprocessor
from resource_prediction.schema import TelemetryError
from resource_prediction.slurm import SlurmError, normalize, parse_memory, parse_timelimit_hours

PARSABLE2 = SLURM_FIXTURES / "sacct_parsable2.txt"
NOHEADER = SLURM_FIXTURES / "sacct_noheader.txt"
MB = 1 / 1024


@pytest.fixture(scope="module")
def jobs() -> pd.DataFrame:
    return load_telemetry(PARSABLE2).set_index("JobID")


def test_the_format_is_detected_and_steps_fold_into_their_job(jobs):
    assert jobs.attrs["schema"]["format"] == "slurm"
    assert list(jobs.index) == ["1001", "1002", "1003", "1004", "1005", "1007", "1010_1", "1010_2", "1014"]
    # 1001: the largest MaxRSS over .batch (1024000K), .extern and .0 (3.5G)
    assert jobs.loc["1001", "max_rss_gb"] == pytest.approx(3.5)
    assert jobs.loc["1010_2", "max_rss_gb"] == pytest.approx(1.5)  # 1572864K
    assert jobs.loc["1002", "JobName"] == "sort" and jobs.loc["1002", "User"] == "bob"


def test_reqmem_per_cpu_per_node_and_total_forms(jobs):
    assert jobs.loc["1001", "memreq_gb"] == pytest.approx(4000 * 4 * MB)  # 4000Mc x 4 CPUs
    assert jobs.loc["1002", "memreq_gb"] == pytest.approx(16.0)  # 16Gn
    assert jobs.loc["1003", "memreq_gb"] == pytest.approx(16.0)  # 32G over 2 nodes


def test_states_timelimits_and_out_of_memory_as_a_lower_bound(jobs):
    assert jobs.loc["1004", "peak_is_lower_bound"]
    assert jobs.loc["1004", "max_rss_gb"] == pytest.approx(2000 * 4 * MB)  # failed at its request
    assert jobs.loc["1005", "State"] == "CANCELLED" and jobs.loc["1007", "State"] == "TIMEOUT"
    assert jobs.loc["1014", "State"] == "FAILED" and jobs.loc["1014", "max_rss_gb"] == pytest.approx(0.5)
    np.testing.assert_allclose(jobs.loc[["1001", "1002", "1003"], "time_limit_h"], [24.0, 0.5, 12.0])
    assert jobs["time"].dt.tz is not None


def test_every_dropped_job_is_counted_by_reason_with_its_line(jobs):
    report = jobs.attrs["load_report"]
    assert report["rows_read"] == 16 and report["rows_in_file"] == 31 and report["kept_out_of_memory"] == 1
    assert report["dropped_by_reason"] == {
        "missing_time": 1, "state_pending": 1, "state_running": 1, "missing_max_rss": 1,
        "implausible_max_rss": 1, "non_positive_reqmem": 1, "duplicate_job_id": 1,
    }
    assert report["dropped_lines"] == {
        "missing_time": "29", "state_pending": "18", "state_running": "19", "missing_max_rss": "15",
        "implausible_max_rss": "25", "non_positive_reqmem": "27", "duplicate_job_id": "24",
    }
    assert report["rows_kept"] + report["rows_dropped"] == report["rows_read"]


def test_headerless_exports_need_their_field_order():
    with pytest.raises(SlurmError, match="no header line.*fields="):
        load_telemetry(NOHEADER, format="slurm")
    fields = (SLURM_FIXTURES / "sacct_noheader.fields").read_text().strip()
    df = load_telemetry(NOHEADER, format="slurm", fields=fields)
    np.testing.assert_allclose(df["memreq_gb"], [8000 * MB, 8000 * MB])  # 8000Mn, 1000Mc x 8
    np.testing.assert_allclose(df["max_rss_gb"], [6500 * MB, 7.0])


def test_parsers_on_their_own():
    size, flag = parse_memory(pd.Series(["4000Mc", "100Gn", "32G", "0.07M", "1T", "x"]))
    np.testing.assert_allclose(size[:5] / 1024**2, [4000, 102400, 32768, 0.07, 1024**2])
    assert np.isnan(size[5]) and flag[:3].tolist() == ["c", "n", ""]
    np.testing.assert_allclose(parse_timelimit_hours(pd.Series(["2-00:00:00", "00:30:00", "Partition_Limit"])),
                               [48.0, 0.5, np.nan])


def test_bytes_that_are_not_utf8_name_the_file_and_line(tmp_path):
    bad = tmp_path / "sacct.txt"
    bad.write_bytes(PARSABLE2.read_bytes().replace(b"carol", b"caro\xe9l"))
    with pytest.raises(TelemetryError, match=r"sacct\.txt: line 8 has bytes that are not UTF-8"):
        load_telemetry(bad)


def test_a_model_takes_raw_sacct_rows_and_refuses_other_formats(jobs, small_telemetry):
    train = load_telemetry(PARSABLE2)
    model = DeployableModel.train("lightgbm_regression", train)
    assert model.schema.name == "slurm" and model.get_model_info()["source"]["format"] == "slurm"
    raw = pd.read_csv(PARSABLE2, sep="|")
    alloc = model.predict(raw)
    assert alloc.shape == (len(normalize(raw)),) and np.isfinite(alloc).all() and (alloc > 0).all()
    with pytest.raises(TelemetryError, match="trained on slurm telemetry but the rows look like build"):
        model.predict(small_telemetry.head(5))


def test_real_sacct_samples_load_train_and_predict(slurm_samples):
    for path, fields in slurm_samples:
        df = load_telemetry(path, format="slurm", fields=fields)
        report = df.attrs["load_report"]
        assert report["rows_kept"] == len(df) > 0
        assert report["rows_kept"] + sum(report["dropped_by_reason"].values()) == report["rows_read"]
        assert (df["max_rss_gb"] > 0).all() and df["time"].is_monotonic_increasing
        X = ModelPreprocessor().fit_transform(df)
        assert not [c for c in X.columns if X[c].nunique(dropna=False) < 2 and not c.startswith("hist_")]
        train, test = time_split(df, 0.2)
        model = DeployableModel.train("global_quantile", train)
        assert np.isfinite(model.predict(test)).all()


def test_real_samples_train_predict_and_export_through_the_cli(slurm_samples, tmp_path, capsys):
    from resource_prediction.cli import main

    path, fields = next((p, f) for p, f in slurm_samples if p.name.startswith("hpc-cost"))
    args = ["--data", str(path), "--sacct-fields", fields]
    assert main(["evaluate", *args, "--artifacts-dir", str(tmp_path), "--task-type", "regression",
                 "--model-family", "lightgbm_regression"]) == 0
    model = tmp_path / "trained_models" / "lightgbm_regression.pkl"
    out = tmp_path / "alloc.csv"
    assert main(["predict", "--model", str(model), *args[2:], "--data", str(path), "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert len(table) == 483 and (table["allocation_gb"] > 0).all()  # every job of the export, steps folded
    assert table["under_allocated"].notna().sum() == 395  # the jobs with a recorded peak are replayed
    capsys.readouterr()
    assert main(["export", "--model", str(model), "--to", "slurm"]) == 0
    assert "--mem=" in capsys.readouterr().out
