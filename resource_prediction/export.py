"""A model's allocations in each ecosystem's own terms: ``resource-prediction export``.

One value per workload (a Nextflow process, a Slurm job name and partition, a build component): the
model's allocation for the next job of each of its variants (the latest job of each history group,
stored with the model, or of ``data``), the largest over the variants. A retry level covers the
failures the model expects: the larger of 1.5 x the allocation and 1.2 x the largest of the group's
last 20 peaks (``hist_grp_max_20``).

* ``nextflow-config``: a ``process { withName: '...' { memory = { ... } } }`` block per process, the
  retry closure giving the retry level on attempts after an out-of-memory exit (137, 140), with
  ``errorStrategy`` / ``maxRetries`` for those exits; ``max_memory_gb`` writes ``resourceLimits`` and
  caps every value.
* ``slurm``: a CSV table with ``sbatch --mem`` values per job name and partition.
* ``kubernetes``: YAML, per workload ``resources.requests.memory`` (the allocation) and
  ``resources.limits.memory`` (the retry level), in Mi.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["EXPORTS", "export_allocations", "workload_allocations"]

RETRY_FACTOR = 1.5
RETRY_MAX_SEEN_MARGIN = 1.2
OOM_EXIT_CODES = (137, 140)


def _group_columns(model, rows: pd.DataFrame) -> list[str]:
    keys = [model.schema.task]
    if model.schema.name == "slurm":
        keys.append("Partition")
    return [k for k in keys if k in rows.columns]


def workload_allocations(model, data: pd.DataFrame | None = None, max_memory_gb: float | None = None
                         ) -> pd.DataFrame:
    """Per workload: ``allocation_mb`` and ``retry_mb`` (whole MB, capped at ``max_memory_gb``).

    ``data`` (rows of the model's source) replaces the latest jobs stored with the model.
    """
    if data is None:
        data = getattr(model, "templates", None)
        if data is None:
            raise ValueError("this model stores no latest jobs per group: give the jobs (--data)")
    rows = model.rows(data)
    variants = [c for c in (*model.schema.fine, "buildProfile") if c in rows.columns]
    latest = rows.sort_values("time", kind="stable").groupby(variants, dropna=False, sort=False).tail(1)
    latest = latest.drop(columns=[c for c in ("max_rss", "max_rss_gb") if c in latest.columns])
    X = model.preprocessor.transform(latest)
    table = latest[_group_columns(model, latest)].astype("str").fillna("unknown")
    table["allocation_gb"] = model.model.predict(X)
    table["retry_gb"] = np.maximum(RETRY_FACTOR * table["allocation_gb"],
                                   RETRY_MAX_SEEN_MARGIN * X["hist_grp_max_20"].to_numpy())
    keys = list(table.columns[:-2])
    out = table.groupby(keys, dropna=False, sort=True)[["allocation_gb", "retry_gb"]].max().reset_index()
    cap = math.inf if max_memory_gb is None else float(max_memory_gb) * 1024
    for col in ("allocation", "retry"):
        out[f"{col}_mb"] = np.minimum(np.ceil(out[f"{col}_gb"] * 1024), cap).astype(np.int64)
    return out.drop(columns=["allocation_gb", "retry_gb"])


def _groovy_string(text: str) -> str:
    return "'" + str(text).replace("\\", "\\\\").replace("'", "\\'") + "'"


def nextflow_config(table: pd.DataFrame, task: str, header: str, max_memory_gb: float | None) -> str:
    lines = [f"// {header}", "process {"]
    if max_memory_gb is not None:
        lines.append(f"    resourceLimits = [ memory: {int(math.floor(max_memory_gb * 1024))}.MB ]")
    exits = ", ".join(map(str, OOM_EXIT_CODES))
    for _, row in table.iterrows():
        lines += [
            f"    withName: {_groovy_string(row[task])} {{",
            f"        memory = {{ task.attempt == 1 ? {row['allocation_mb']}.MB : {row['retry_mb']}.MB }}",
            f"        errorStrategy = {{ task.exitStatus in [{exits}] ? 'retry' : 'terminate' }}",
            "        maxRetries = 1",
            "    }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def slurm_table(table: pd.DataFrame, task: str, header: str, max_memory_gb: float | None) -> str:
    out = table.rename(columns={task: "JobName"}).copy()
    out["sbatch"] = "--mem=" + out["allocation_mb"].astype(str) + "M"
    out["sbatch_retry"] = "--mem=" + out["retry_mb"].astype(str) + "M"
    return f"# {header}\n" + out.to_csv(index=False)


def kubernetes_yaml(table: pd.DataFrame, task: str, header: str, max_memory_gb: float | None) -> str:
    lines = [f"# {header}", "workloads:"]
    for _, row in table.iterrows():
        name = str(row[task]).replace('"', '\\"')
        lines += [
            f'  "{name}":',
            "    resources:",
            "      requests:",
            f"        memory: {row['allocation_mb']}Mi",
            "      limits:",
            f"        memory: {row['retry_mb']}Mi",
        ]
    return "\n".join(lines) + "\n"


#: Export target -> writer.
EXPORTS = {"nextflow-config": nextflow_config, "slurm": slurm_table, "kubernetes": kubernetes_yaml}


def export_allocations(model, to: str, data: pd.DataFrame | None = None,
                       max_memory_gb: float | None = None) -> str:
    """The text of an export (see the module docstring)."""
    if to not in EXPORTS:
        raise ValueError(f"unknown export target {to!r}; choose one of {', '.join(EXPORTS)}")
    table = workload_allocations(model, data, max_memory_gb)
    info = model.get_model_info()
    header = (f"resource-prediction {info.get('family', '?')} model, trained on "
              f"{model.schema.name} telemetry up to {info.get('training', {}).get('time_end', '?')}: "
              f"memory per {model.schema.task}")
    return EXPORTS[to](table, model.schema.task, header, max_memory_gb)
