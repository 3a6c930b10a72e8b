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
    normalize,
    parse_bytes,
)
from resource_prediction.preprocessing import ModelPreprocessor

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
def test_a_trace_loads_with_its_own_fields_in_either_format(tmp_path, rows):
    df = load_telemetry(_write(tmp_path, rows))
    report = df.attrs["load_report"]
    # The failed attempt was killed for its memory (exit 137): kept as a lower bound.
    assert report["rows_read"] == 3 and report["dropped_by_reason"] == {}
    assert report["kept_failed_oom"] == 1
    assert df["process"].tolist() == ["ALIGN", "ALIGN", "SORT"]
    assert df["tag"].tolist() == ["s1", "s2", "s1"]
    np.testing.assert_allclose(df["max_rss_gb"], [1.0, 4.0, 0.5])
    assert df["peak_is_lower_bound"].tolist() == [False, True, False]
    np.testing.assert_allclose(df["memreq_gb"], [4.0, 4.0, 2.0])
    assert (df["workflow"] == "demo").all() and df["cpus"].tolist() == [4, 4, 2]
    assert pd.api.types.is_string_dtype(df["process"])
    assert df["time"].is_monotonic_increasing and df["time"].dt.tz is not None
    assert df.attrs["schema"]["format"] == "nextflow"


def test_a_failed_attempt_that_was_not_out_of_memory_is_dropped_with_its_line(tmp_path, caplog):
    rows = [RAW_ROWS[0], RAW_ROWS[1].replace(",137,", ",1,"), RAW_ROWS[2]]
    df = load_telemetry(_write(tmp_path, rows))
    assert df.attrs["load_report"]["dropped_by_reason"] == {"status_failed": 1}
    assert df.attrs["load_report"]["dropped_lines"] == {"status_failed": "3"}
    assert "file lines 3" in caplog.text


def test_the_retry_of_an_out_of_memory_attempt_sees_the_failed_request(tmp_path):
    rows = [
        "1,ab/000001,ALIGN,s1,FAILED,137,4,4294967296,1719302359716,-",
        "2,ab/000002,ALIGN,s1,COMPLETED,0,4,8589934592,1719302360716,5368709120",
        "3,ab/000003,ALIGN,s2,COMPLETED,0,4,4294967296,1719302361716,1073741824",
    ]
    header = HEADER.replace(",tag,", ",tag,attempt,").replace("process,tag,attempt", "process,tag,attempt")
    rows = [r.replace(",s1,", ",s1,1,", 1) if i == 0 else r.replace(",s1,", ",s1,2,", 1).replace(",s2,", ",s2,1,", 1)
            for i, r in enumerate(rows)]
    df = load_telemetry(_write(tmp_path, rows, header=header))
    assert df["attempt"].tolist() == [1, 2, 1]
    np.testing.assert_allclose(df["failed_memory_gb"], [0.0, 4.0, 0.0])


def test_rchar_is_an_opt_in_input_size(tmp_path):
    header = HEADER + ",rchar"
    rows = [r + ",1073741824" for r in RAW_ROWS]
    assert "input_size" not in load_telemetry(_write(tmp_path, rows, header=header)).columns
    df = load_telemetry(_write(tmp_path, rows, header=header), input_size="rchar")
    np.testing.assert_allclose(df["input_size_gb"], 1.0)
    with pytest.raises(NextflowTraceError, match="no 'rchar' column"):
        load_telemetry(_write(tmp_path, RAW_ROWS), input_size="rchar")


def test_tab_separated_traces_and_human_durations(tmp_path):
    header = "process\ttag\tstatus\texit\tcpus\tmemory\ttime\tsubmit\tpeak_rss"
    rows = ["A\tx\tCOMPLETED\t0\t2\t2 GB\t1d 12h\t2024-06-25 08:00:00.000\t1 GB",
            "A\ty\tCOMPLETED\t0\t2\t2 GB\t30m\t2024-06-25 08:00:01.000\t1.5 GB"]
    df = load_telemetry(_write(tmp_path, rows, name="trace.txt", header=header))
    np.testing.assert_allclose(df["time_limit_h"], [36.0, 0.5])
    np.testing.assert_allclose(df["max_rss_gb"], [1.0, 1.5])


def test_the_oom_exit_code_counts_as_a_memory_failure():
    trace = pd.read_csv(io.StringIO("\n".join([HEADER, *RAW_ROWS])))
    rows = normalize(trace)
    assert rows["peak_is_lower_bound"].tolist() == [False, True, False]
    assert len(rows) == 3 and rows.index.equals(trace.index)


def test_sizes_parse_with_binary_units():
    got = parse_bytes(pd.Series(["1 KB", "2.5 MB", "3 GB", "1 TB", "77", None]))
    expected = [1024, 2.5 * 1024**2, 3 * BYTES_PER_GB, 1024**4, 77, np.nan]
    np.testing.assert_allclose(got.to_numpy(), expected)


def test_unreadable_requests_and_peaks_are_dropped_with_their_lines(tmp_path, caplog):
    bad = [RAW_ROWS[0], RAW_ROWS[2].replace("2147483648", "lots"), RAW_ROWS[2].replace("536870912", "many")]
    df = load_telemetry(_write(tmp_path, bad))
    report = df.attrs["load_report"]
    assert report["dropped_by_reason"] == {"non_numeric_peak_rss": 1, "non_numeric_memory": 1}
    assert report["dropped_lines"] == {"non_numeric_peak_rss": "4", "non_numeric_memory": "3"}
    np.testing.assert_allclose(df["max_rss_gb"], [1.0])


def test_missing_columns_name_the_file(tmp_path):
    no_memory = [",".join(r.split(",")[:7] + r.split(",")[8:]) for r in RAW_ROWS]
    header = HEADER.replace(",memory", "")
    with pytest.raises(NextflowTraceError, match=r"trace_demo\.csv.*missing: memory"):
        load_telemetry(_write(tmp_path, no_memory, header=header), format="nextflow")


def test_implausible_values_and_duplicate_hashes_are_dropped_and_counted(tmp_path):
    rows = [RAW_ROWS[0], RAW_ROWS[0].replace("1719302359716", "1719302359717"),
            RAW_ROWS[2].replace("536870912", "1" + "0" * 30), RAW_ROWS[2].replace(",2147483648,", ",0,")
            .replace("ab/000003", "ab/000004")]
    df = load_telemetry(_write(tmp_path, rows))
    assert df.attrs["load_report"]["dropped_by_reason"] == {
        "implausible_peak_rss": 1, "non_positive_memory": 1, "duplicate_task_hash": 1}
    assert len(df) == 1


def test_trace_errors_are_telemetry_errors():
    assert issubclass(NextflowTraceError, TelemetryError)


def test_unparseable_submit_times_are_dropped_and_counted(tmp_path):
    rows = [RAW_ROWS[0], RAW_ROWS[2].replace("1719302361716", "yesterday")]
    df = load_telemetry(_write(tmp_path, rows))
    assert df.attrs["load_report"]["dropped_by_reason"] == {"unparseable_time": 1}
    assert df.attrs["load_report"]["dropped_lines"] == {"unparseable_time": "3"}


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


def test_real_traces_give_no_constant_feature(nextflow_traces):
    """Every feature of the real traces varies over the training jobs (no placeholder columns)."""
    for path in nextflow_traces:
        for input_size in (None, "rchar"):
            df = load_telemetry(path, input_size=input_size)
            X = ModelPreprocessor().fit_transform(df)
            constant = [c for c in X.columns if X[c].nunique(dropna=False) < 2]
            assert constant == [], (path.name, constant)
            assert "process" in X.columns and ("input_size_gb" in X.columns) == (input_size == "rchar")
            assert not {"component", "buildProfile", "makeType", "architecture"} & set(X.columns)


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


def test_a_trace_model_takes_raw_trace_rows_and_refuses_build_rows(nextflow_traces, small_telemetry):
    path = nextflow_traces[0]
    df = load_telemetry(path, input_size="rchar")
    train, test = time_split(df)
    model = DeployableModel.train("lightgbm_regression", train)
    assert model.schema.name == "nextflow" and model.schema.options == {"input_size": "rchar"}
    raw = pd.read_csv(path)  # the trace exactly as read: submit in epoch ms, sizes in bytes
    raw_test = raw[raw["hash"].isin(set(test["hash"]))].drop(columns=["peak_rss", "rchar"])
    with pytest.raises(NextflowTraceError, match="no 'rchar' column"):
        model.predict(raw_test)
    raw_test = raw[raw["hash"].isin(set(test["hash"]))].drop(columns=["peak_rss"])
    by_hash = pd.Series(model.predict(raw_test), index=raw_test["hash"].to_numpy())
    loaded = pd.Series(model.predict(test.drop(columns=["max_rss", "max_rss_gb"])), index=test["hash"].to_numpy())
    np.testing.assert_allclose(by_hash[loaded.index].to_numpy(), loaded.to_numpy(), rtol=1e-9)
    with pytest.raises(TelemetryError, match="trained on nextflow telemetry but the rows look like build"):
        model.predict(small_telemetry.head(3))


def test_a_trace_with_bytes_that_are_not_utf8_names_the_line(tmp_path):
    path = _write(tmp_path, RAW_ROWS)
    path.write_bytes(path.read_bytes().replace(b",s2,", b",s\xff2,"))
    with pytest.raises(TelemetryError, match=r"trace_demo\.csv: line 3 has bytes that are not UTF-8"):
        load_telemetry(path)
