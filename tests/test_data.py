import logging

import numpy as np
import pandas as pd
import pytest
from pandas.api import types as ptypes

from resource_prediction.data import (
    TelemetryError,
    load_telemetry,
    save_telemetry,
    time_split,
)
from resource_prediction.synthetic import generate_telemetry


@pytest.fixture(scope="module")
def frame():
    return generate_telemetry(300, seed=2, with_truth=True)


@pytest.mark.parametrize("ext", ["csv", "parquet"])
def test_round_trip(tmp_path, frame, ext):
    path = save_telemetry(frame, tmp_path / f"t.{ext}")
    df = load_telemetry(path)
    assert len(df) == len(frame)
    assert df.attrs["load_report"] == {
        "source": str(path), "rows_read": 300, "rows_kept": 300, "rows_dropped": 0, "dropped_by_reason": {},
        "dropped_lines": {},
    }
    assert isinstance(df["time"].dtype, pd.DatetimeTZDtype)
    assert ptypes.is_string_dtype(df["component"]) and not ptypes.is_object_dtype(df["component"])
    assert ptypes.is_integer_dtype(df["localJobs"])
    np.testing.assert_allclose(df["max_rss_gb"], frame["max_rss_gb"])
    np.testing.assert_allclose(df["memreq_gb"], frame["memreq_gb"])
    # extra (truth) columns are kept and typed
    assert ptypes.is_float_dtype(df["truth_mu"])


def test_comma_separated_with_commas_inside_targets(tmp_path, frame):
    path = tmp_path / "comma.csv"
    frame.to_csv(path, sep=",", index=False)
    df = load_telemetry(path)
    assert len(df) == len(frame)
    assert df["targets"].str.contains(",").any()


def test_sorted_by_time(tmp_path, frame):
    path = tmp_path / "shuffled.csv"
    save_telemetry(frame.sample(frac=1.0, random_state=0), path)
    assert load_telemetry(path)["time"].is_monotonic_increasing


def _write(tmp_path, frame, edit):
    raw = frame.drop(columns=["max_rss_gb", "memreq_gb"]).astype({"max_rss": "str", "time": "str"})
    raw = edit(raw.copy())
    path = tmp_path / "bad.csv"
    raw.to_csv(path, sep=";", index=False)
    return path


def test_bad_rows_are_dropped_counted_and_logged(tmp_path, frame, caplog):
    def edit(raw):
        raw.loc[0, "time"] = "not a time"
        raw.loc[1, "max_rss"] = "-5"
        raw.loc[2, "max_rss"] = "lots"
        raw.loc[3, "max_rss"] = np.nan
        raw.loc[4, "component"] = np.nan
        raw.loc[5, "max_rss"] = "0"
        return raw

    with caplog.at_level(logging.WARNING):
        df = load_telemetry(_write(tmp_path, frame, edit))
    report = df.attrs["load_report"]
    assert report["rows_read"] == 300 and report["rows_kept"] == 294 and report["rows_dropped"] == 6
    assert report["dropped_by_reason"] == {
        "unparseable_time": 1, "missing_max_rss": 1, "non_numeric_max_rss": 1,
        "non_positive_max_rss": 2, "missing_component": 1,
    }
    assert "unparseable_time (file lines 2)" in caplog.text


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p, f: p, "no such file"),
        (lambda p, f: (p.write_text(""), p)[1], "empty"),
        (lambda p, f: (p.write_text("time;component\n"), p)[1], "required column"),
        (lambda p, f: (f.drop(columns=["max_rss"]).to_csv(p, sep=";", index=False), p)[1], "max_rss"),
        (lambda p, f: (f.to_csv(p, sep="\t", index=False), p)[1], "separator"),
        (lambda p, f: (f.assign(max_rss=-1.0).to_csv(p, sep=";", index=False), p)[1], "no usable row"),
    ],
    ids=["missing", "empty", "header-only", "no-target", "tab-separated", "all-negative"],
)
def test_unusable_files_raise_with_the_file_name(tmp_path, frame, make, message):
    path = make(tmp_path / "x.csv", frame)
    with pytest.raises(TelemetryError, match=message) as info:
        load_telemetry(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_time_split_is_by_time(frame):
    train, holdout = time_split(frame, 0.2)
    assert len(holdout) == 60 and len(train) == 240
    assert train["time"].max() <= holdout["time"].min()
    with pytest.raises(ValueError):
        time_split(frame, 1.5)


def test_implausible_values_and_duplicate_ids_are_dropped_with_their_lines(tmp_path, frame):
    def edit(raw):
        raw.loc[0, "max_rss"] = "1e30"
        raw.loc[1, "memreq"] = 0
        raw.loc[2, "memreq"] = -512
        raw.loc[7, "atom_id"] = raw.loc[3, "atom_id"]
        return raw

    df = load_telemetry(_write(tmp_path, frame, edit))
    report = df.attrs["load_report"]
    assert report["dropped_by_reason"] == {
        "implausible_max_rss": 1, "non_positive_memreq": 2, "duplicate_job_id": 1,
    }
    assert report["dropped_lines"] == {
        "implausible_max_rss": "2", "non_positive_memreq": "3, 4", "duplicate_job_id": "9",
    }
    assert df["atom_id"].is_unique and len(df) == 296


def test_bytes_that_are_not_utf8_raise_naming_the_file_and_line(tmp_path, frame):
    path = save_telemetry(frame, tmp_path / "t.csv")
    lines = path.read_bytes().split(b"\n")
    lines[5] = lines[5].replace(b";", "é".encode("latin-1") + b";", 1)
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(TelemetryError, match=r"t\.csv: line 6 has bytes that are not UTF-8"):
        load_telemetry(path)


def test_format_is_detected_or_given(tmp_path, frame):
    path = save_telemetry(frame, tmp_path / "t.csv")
    assert load_telemetry(path).attrs["schema"]["format"] == "build"
    assert len(load_telemetry(path, format="build")) == len(frame)
    with pytest.raises(ValueError, match="format must be"):
        load_telemetry(path, format="yaml")


def _imports(module: str) -> set[str]:
    """Package modules that ``module`` imports anywhere (module level or inside functions)."""
    import ast
    import importlib.util

    tree = ast.parse(open(importlib.util.find_spec(module).origin).read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("resource_prediction"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("resource_prediction")}
    return found


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("resource_prediction.data", "resource_prediction.nextflow"),
        ("resource_prediction.data", "resource_prediction.slurm"),
        ("resource_prediction.cli", "resource_prediction.pipeline"),
        ("resource_prediction.cli", "resource_prediction.training.commands"),
        ("resource_prediction.data", "resource_prediction.synthetic"),
    ],
)
def test_the_data_layer_has_no_import_cycle(a, b):
    assert not (b in _imports(a) and a in _imports(b)), (a, b)


def test_readers_import_only_the_schema():
    for reader in ("resource_prediction.nextflow", "resource_prediction.slurm", "resource_prediction.schema"):
        assert _imports(reader) <= {"resource_prediction.schema"} | {
            f"resource_prediction.schema.{n}" for n in dir(__import__("resource_prediction.schema").schema)
        }, reader
