"""Shared fixtures: small generated data sets (seeded, cached per session) and free local ports."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from resource_prediction.synthetic import generate_telemetry

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def small_telemetry() -> pd.DataFrame:
    """6,000 generated jobs with truth columns (seed 0)."""
    return generate_telemetry(6000, seed=0, with_truth=True)


@pytest.fixture(scope="session")
def medium_telemetry() -> pd.DataFrame:
    """20,000 generated jobs with truth columns (seed 0)."""
    return generate_telemetry(20_000, seed=0, with_truth=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """A function returning a free TCP port on 127.0.0.1 (for servers the tests start)."""
    return _free_port


#: Process types of :func:`write_nextflow_trace` and their typical peaks (GB).
TRACE_PROCESSES = {"NF:ALIGN": 6.0, "NF:SORT": 2.0, "QC": 0.5}


def write_nextflow_trace(path: Path, n: int = 90, seed: int = 0, request_gb: float | None = 16.0) -> Path:
    """A small Nextflow trace of :data:`TRACE_PROCESSES` in turn (peaks within 20 % of each
    type's), written as Nextflow writes one; every task requests ``request_gb`` (None: twice its
    type's typical peak)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        process = list(TRACE_PROCESSES)[i % len(TRACE_PROCESSES)]
        typical = TRACE_PROCESSES[process]
        request = 2 * typical if request_gb is None else request_gb
        peak = typical * rng.uniform(0.8, 1.2) * 1024**3
        rows.append({"task_id": i + 1, "hash": f"{i:02x}/{i:06x}", "process": process, "tag": f"s{i // 3}",
                     "status": "COMPLETED", "exit": 0, "cpus": 2 if process == "QC" else 8,
                     "memory": int(request * 1024**3), "attempt": 1, "time": 14400000,
                     "submit": 1719302359716 + 60_000 * i, "peak_rss": int(peak), "rchar": int(peak / 3)})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def nextflow_traces() -> list[Path]:
    """The real Nextflow traces of ``../shared/data/nextflow`` (skipped where they are absent)."""
    traces = sorted((SHARED_DATA / "nextflow").glob("trace_*.csv"))
    if not traces:
        pytest.skip(f"no real Nextflow traces under {SHARED_DATA / 'nextflow'}")
    return traces


#: Field orders of the headerless real ``sacct`` samples (from ``../shared/data/slurm/README.md``).
SLURM_SAMPLE_FIELDS = {
    "hb-jobinfo_sacct.txt": "JobID,JobName,User,Partition,NodeList,NNodes,NCPUs,NTasks,State,Submit,Start,End,"
    "Timelimit,Elapsed,TotalCPU,CPUTime,UserCPU,SystemCPU,ReqMem,MaxRSS,MaxVMSize,ReqTRES,AllocTRES,"
    "TRESUsageInMax,TRESUsageInTot,TRESUsageOutTot,MaxDiskRead,MaxDiskWrite,MaxRSSNode,MaxRSSTask,"
    "MaxVMSizeNode,MaxVMSizeTask,MaxDiskReadNode,MaxDiskReadTask,MaxDiskWriteNode,MaxDiskWriteTask,Comment",
    "slurm-jobinfo_sacct.txt": "JobID,JobName,User,Partition,NodeList,NNodes,NCPUS,NTasks,State,Submit,Start,End,"
    "Timelimit,Elapsed,TotalCPU,UserCPU,SystemCPU,ReqMem,MaxRSS,TRESUsageInTot,TRESUsageOutTot,MaxDiskWrite,"
    "MaxDiskRead,MaxRSSNode,MaxDiskWriteNode,MaxDiskReadNode,Comment",
    "hpc-cost-simulator_sacct-output.txt": "State,JobID,ReqCPUS,ReqMem,ReqNodes,Constraints,Submit,Eligible,Start,"
    "Elapsed,Suspended,End,ExitCode,DerivedExitCode,AllocNodes,NCPUS,MaxDiskRead,MaxDiskWrite,MaxPages,MaxRSS,"
    "MaxVMSize,CPUTime,UserCPU,SystemCPU,TotalCPU",
}
SLURM_FIXTURES = Path(__file__).resolve().parent / "data" / "slurm"


@pytest.fixture(scope="session")
def slurm_samples() -> list[tuple[Path, str]]:
    """The real ``sacct`` samples of ``../shared/data/slurm`` with their field orders (skipped if absent)."""
    found = [(SHARED_DATA / "slurm" / name, fields) for name, fields in SLURM_SAMPLE_FIELDS.items()
             if (SHARED_DATA / "slurm" / name).exists()]
    if not found:
        pytest.skip(f"no real sacct samples under {SHARED_DATA / 'slurm'}")
    return found
