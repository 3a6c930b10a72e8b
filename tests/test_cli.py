import subprocess
import sys

from resource_prediction.cli import main
from resource_prediction.data import load_telemetry


def test_generate_csv_and_parquet(tmp_path, capsys):
    for ext in ("csv", "parquet"):
        out = tmp_path / f"jobs.{ext}"
        assert main(["generate", "--jobs", "500", "--seed", "3", "--out", str(out)]) == 0
        assert len(load_telemetry(out)) == 500
    assert "wrote 500 jobs" in capsys.readouterr().out


def test_summary_prints_baseline_and_oracle(tmp_path, capsys):
    data = tmp_path / "jobs.csv"
    main(["generate", "--jobs", "2000", "--out", str(data)])
    assert main(["summary", "--data", str(data), "--json", str(tmp_path / "s.json")]) == 0
    text = capsys.readouterr().out
    assert "configured_request" in text and "oracle" in text
    assert (tmp_path / "s.json").exists()


def test_summary_says_which_jobs_the_request_line_covers(tmp_path, capsys):
    """Jobs without a request are left out of the request's line, and the line says so."""
    data = tmp_path / "jobs.csv"
    main(["generate", "--jobs", "2000", "--out", str(data)])
    df = load_telemetry(data)
    df.loc[df.index[-50:], "memreq"] = None
    df.drop(columns=["memreq_gb", "max_rss_gb"]).to_csv(data, sep=";", index=False)
    assert main(["summary", "--data", str(data)]) == 0
    assert "(the 150 jobs with a request)" in capsys.readouterr().out
    df["memreq"] = None
    df.drop(columns=["memreq_gb", "max_rss_gb"]).to_csv(data, sep=";", index=False)
    assert main(["summary", "--data", str(data)]) == 0
    assert "configured_request  none: no holdout job has a request" in capsys.readouterr().out


def test_module_entry_point_reports_bad_input(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a\tb\n1\t2\n")
    proc = subprocess.run(
        [sys.executable, "-m", "resource_prediction", "summary", "--data", str(bad)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert "separator" in proc.stderr and str(bad) in proc.stderr


def test_the_notebook_pipeline_refuses_other_sources_and_points_to_evaluate(tmp_path, capsys):
    trace = tmp_path / "trace_demo.csv"
    trace.write_text("process,submit,memory,peak_rss\nA,1719302359716,4294967296,1073741824\n")
    assert main(["--preprocess-only", "--data", str(trace), "--artifacts-dir", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "nextflow telemetry: the notebooks describe build telemetry" in err and "evaluate" in err
