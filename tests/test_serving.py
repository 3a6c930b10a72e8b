"""predict and export end to end through the command line, on build, Nextflow and Slurm data."""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import SLURM_FIXTURES, TRACE_PROCESSES, write_nextflow_trace

from resource_prediction.cli import main
from resource_prediction.data import load_telemetry, save_telemetry, time_split
from resource_prediction.deployable import DeployableModel
from resource_prediction.export import workload_allocations


@pytest.fixture(scope="module")
def models(tmp_path_factory, small_telemetry):
    root = tmp_path_factory.mktemp("serving")
    build = save_telemetry(small_telemetry.iloc[:3000], root / "build.csv")
    trace = write_nextflow_trace(root / "trace_demo.csv")
    sacct = SLURM_FIXTURES / "sacct_parsable2.txt"
    out = {}
    for name, path, family in [("build", build, "lightgbm_regression"), ("nextflow", trace, "lightgbm_regression"),
                               ("slurm", sacct, "group_percentile")]:
        train, _ = time_split(load_telemetry(path), 0.2)
        model = DeployableModel.train(family, train)
        out[name] = (model.save(root / f"{name}.pkl"), path, model)
    return out


@pytest.mark.parametrize("name", ["build", "nextflow", "slurm"])
def test_predict_writes_one_allocation_per_job_with_replay_and_explanation(models, name, tmp_path, capsys):
    model_path, data, model = models[name]
    out = tmp_path / "alloc.csv"
    assert main(["predict", "--model", str(model_path), "--data", str(data), "--out", str(out), "--explain"]) == 0
    table = pd.read_csv(out)
    assert len(table) == len(model.rows(pd.read_csv(data, sep=None, engine="python")))
    assert (table["allocation_gb"] > 0).all() and {"p_failure", "median_gb", "expected_waste_gb"} <= set(table)
    assert {"peak_gb", "under_allocated", "waste_gb"} <= set(table) and "replay:" in capsys.readouterr().out


def test_predict_without_peaks_gives_the_same_first_allocations(models, tmp_path):
    model_path, data, model = models["nextflow"]
    raw = pd.read_csv(data).drop(columns=["peak_rss"])
    jobs = tmp_path / "jobs.csv"
    raw.to_csv(jobs, index=False)
    out = tmp_path / "alloc.csv"
    assert main(["predict", "--model", str(model_path), "--data", str(jobs), "--out", str(out)]) == 0
    table = pd.read_csv(out)
    np.testing.assert_allclose(table["allocation_gb"], model.predict(raw), rtol=1e-9)
    assert "under_allocated" not in table


def test_a_model_refuses_another_format_through_the_cli(models, capsys):
    model_path, _, _ = models["nextflow"]
    _, build_data, _ = models["build"]
    assert main(["predict", "--model", str(model_path), "--data", str(build_data), "--out", "x.csv"]) == 2
    assert "trained on nextflow telemetry but the rows look like build" in capsys.readouterr().err


def _withname_blocks(text: str) -> dict[str, tuple[int, int]]:
    """withName selector -> (first-attempt MB, retry MB), from the Groovy text."""
    pattern = re.compile(
        r"withName: '((?:[^'\\]|\\.)*)' \{\s*memory = \{ task\.attempt == 1 \? (\d+)\.MB : (\d+)\.MB \}"
    )
    return {m.group(1): (int(m.group(2)), int(m.group(3))) for m in pattern.finditer(text)}


def test_nextflow_config_has_one_block_per_process_and_its_values_round_trip(models, tmp_path):
    model_path, _, model = models["nextflow"]
    out = tmp_path / "resources.config"
    assert main(["export", "--model", str(model_path), "--to", "nextflow-config", "--out", str(out),
                 "--max-memory-gb", "5"]) == 0
    text = out.read_text()
    assert text.count("{") == text.count("}") and text.lstrip().startswith("//")
    assert re.search(r"^process \{$", text, re.M) and "resourceLimits = [ memory: 5120.MB ]" in text
    blocks = _withname_blocks(text)
    table = workload_allocations(model, max_memory_gb=5).set_index("process")
    assert set(blocks) == set(TRACE_PROCESSES)
    for process, (first, retry) in blocks.items():
        assert (first, retry) == (table.loc[process, "allocation_mb"], table.loc[process, "retry_mb"])
        assert first <= retry <= 5120
    assert text.count("errorStrategy = { task.exitStatus in [137, 140] ? 'retry' : 'terminate' }") == 3


def test_slurm_and_kubernetes_exports(models, tmp_path, capsys):
    model_path, _, model = models["slurm"]
    assert main(["export", "--model", str(model_path), "--to", "slurm"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out), comment="#")
    assert {"JobName", "Partition", "allocation_mb", "sbatch"} <= set(table.columns)
    assert (table["sbatch"] == "--mem=" + table["allocation_mb"].astype(str) + "M").all()
    build_path, _, build_model = models["build"]
    assert main(["export", "--model", str(build_path), "--to", "kubernetes"]) == 0
    doc = yaml.safe_load(capsys.readouterr().out)
    expected = workload_allocations(build_model).set_index("component")
    assert set(doc["workloads"]) == set(expected.index)
    for name, spec in doc["workloads"].items():
        assert spec["resources"]["requests"]["memory"] == f"{expected.loc[name, 'allocation_mb']}Mi"
