"""Nextflow trace reports as telemetry: mapping, both trace formats, bad input, the real traces."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from resource_prediction.data import BYTES_PER_GB, TelemetryError, load_telemetry, time_split
from resource_prediction.deployable import DeployableModel
from resource_prediction.nextflow import (
    NextflowTraceError,
    is_nextflow_trace,
    nextflow_to_telemetry,
    parse_bytes,
)

HEADER = "task_id,hash,process,tag,status,exit,cpus,memory,submit,peak_rss"
RAW_ROWS = [
    "1,ab/000001,ALIGN,s1,COMPLETED,0,4,4294967296,1719302359716,1073741824",
    "2,ab/000002,ALIGN,s2,FAILED,137,4,4294967296,1719302360716,-",
    "3,ab/000003,SORT,s1,COMPLETED,0,2,2147483648,1719302361716,536870912",
]
HUMAN_ROWS = [
    "1,ab/000001,ALIGN,s1,COMPLETED,0,4,4 GB,2024-06-25 08:00:00.000,1 GB",
    "2,ab/000002,ALIGN,s2,FAILED,137,4,4 GB,2024-06-25 08:00:01.000,-",
    "3,ab/000003,SORT,s1,COMPLETED,0,2,2 GB,2024-06-25 08:00:02.000,512 MB",
]


def _write(tmp_path, rows, name="trace_demo.csv", header=HEADER):
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.mark.parametrize("rows", [RAW_ROWS, HUMAN_ROWS], ids=["raw", "human-readable"])
def test_a_trace_loads_as_telemetry_in_either_format(tmp_path, rows):
    df = load_telemetry(_write(tmp_path, rows))
    report = df.attrs["load_report"]
    assert report["rows_read"] == 3 and report["dropped_by_reason"] == {"missing_max_rss": 1}
    assert df["component"].tolist() == ["ALIGN", "SORT"]
    np.testing.assert_allclose(df["max_rss_gb"], [1.0, 0.5])
    np.testing.assert_allclose(df["memreq_gb"], [4.0, 2.0])
    assert (df["branch"] == "demo").all() and df["jobs"].tolist() == [4, 2]
    assert pd.api.types.is_string_dtype(df["component"])
    assert df["time"].is_monotonic_increasing and df["time"].dt.tz is not None


def test_the_oom_exit_code_counts_as_a_memory_failure():
    trace = pd.read_csv(io.StringIO("\n".join([HEADER, *RAW_ROWS])))
    raw = nextflow_to_telemetry(trace)
    assert raw["memory_fail_count"].tolist() == [0.0, 1.0, 0.0]
    assert raw["max_rss"].isna().tolist() == [False, True, False]


def test_sizes_parse_with_binary_units():
    got = parse_bytes(pd.Series(["1 KB", "2.5 MB", "3 GB", "1 TB", "77", None]))
    expected = [1024, 2.5 * 1024**2, 3 * BYTES_PER_GB, 1024**4, 77, np.nan]
    np.testing.assert_allclose(got.to_numpy(), expected)


def test_unreadable_requests_and_missing_columns_name_the_file_column_and_lines(tmp_path):
    bad = [*RAW_ROWS[:2], RAW_ROWS[2].replace("2147483648", "lots")]
    with pytest.raises(NextflowTraceError, match=r"trace_demo\.csv.*'memory'.*file lines 4.*lots"):
        load_telemetry(_write(tmp_path, bad))
    no_memory = [",".join(r.split(",")[:7] + r.split(",")[8:]) for r in RAW_ROWS]
    header = HEADER.replace(",memory", "")
    with pytest.raises(NextflowTraceError, match=r"trace_demo\.csv.*missing: memory"):
        load_telemetry(_write(tmp_path, no_memory, header=header))


@pytest.mark.parametrize("rows", [RAW_ROWS, HUMAN_ROWS], ids=["raw", "human-readable"])
def test_an_unreadable_peak_is_dropped_and_counted_like_any_bad_peak(tmp_path, rows, caplog):
    bad = [rows[0], rows[1], rows[2].replace("536870912", "lots").replace("512 MB", "lots")]
    df = load_telemetry(_write(tmp_path, bad))
    report = df.attrs["load_report"]
    assert report["dropped_by_reason"] == {"missing_max_rss": 1, "non_numeric_max_rss": 1}
    assert "file lines 4" in caplog.text
    np.testing.assert_allclose(df["max_rss_gb"], [1.0])


def test_trace_errors_are_telemetry_errors():
    assert issubclass(NextflowTraceError, TelemetryError)


def test_unparseable_submit_times_are_dropped_and_counted(tmp_path):
    rows = [RAW_ROWS[0], RAW_ROWS[2].replace("1719302361716", "yesterday")]
    df = load_telemetry(_write(tmp_path, rows))
    assert df.attrs["load_report"]["dropped_by_reason"] == {"unparseable_time": 1}


def test_build_telemetry_is_not_taken_for_a_trace(small_telemetry):
    assert not is_nextflow_trace(small_telemetry.columns)


def test_real_traces_load_without_losing_rows_silently(nextflow_traces):
    for path in nextflow_traces:
        raw_rows = sum(1 for _ in path.open()) - 1
        df = load_telemetry(path)
        report = df.attrs["load_report"]
        assert report["rows_read"] == raw_rows
        assert report["rows_kept"] + sum(report["dropped_by_reason"].values()) == raw_rows
        assert (df["max_rss_gb"] > 0).all() and (df["memreq_gb"] > 0).all()


def test_a_model_trained_on_a_real_trace_beats_one_global_quantile(nextflow_traces):
    """Train on the earlier 90 % of each real trace; score the later 10 %, never seen."""
    for path in nextflow_traces:
        train, test = time_split(load_telemetry(path))
        model = DeployableModel.train("lightgbm_regression", train)
        alloc = model.predict(test)
        assert alloc.shape == (len(test),) and np.isfinite(alloc).all() and (alloc > 0).all()
        score = model.evaluate(test)["business_score"]
        baseline = DeployableModel.train("global_quantile", train).evaluate(test)["business_score"]
        assert score < baseline, (path.name, score, baseline)
