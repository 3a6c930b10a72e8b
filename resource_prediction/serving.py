"""Allocations for new jobs from a saved model: what ``resource-prediction predict`` writes.

:func:`predict_allocations` takes rows of the model's own source (see
:meth:`~resource_prediction.deployable.DeployableModel.rows`) and returns one allocation per job, in
GB, in chunks (a progress bar on large files). When the rows hold peaks, jobs are replayed in time
order: each sees the peaks of the jobs before it, as a scheduler that learns each peak when the job
ends, and the output says which allocations would have failed.

``explain=True`` adds, where the model gives them, the predicted median peak (``median_gb``), the
quantile the allocation stands at (``quantile``), the probability of failure (``p_failure`` =
1 - ``quantile``) and the expected waste (``expected_waste_gb`` = allocation - median, at least 0).
Models that do not give a median or a quantile leave those columns empty rather than guess.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd

from resource_prediction.features.raw import target_gb

__all__ = ["predict_allocations"]

#: Columns of a model's ``explain`` that are its median / its quantile level, in order of preference.
_MEDIAN = ("median_gb",)
_QUANTILE = ("quantile_level", "alpha", "quantile")
_ID_COLUMNS = ("atom_id", "hash", "task_id", "JobID")


def _first(frame: pd.DataFrame, names: tuple[str, ...]) -> np.ndarray:
    for name in names:
        if name in frame.columns:
            return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
    return np.full(len(frame), np.nan)


def predict_allocations(model, raw: pd.DataFrame, *, explain: bool = False, chunk_size: int = 50_000,
                        progress: bool = False) -> pd.DataFrame:
    """One row per job: its id and task type, ``allocation_gb`` and, on request, the explanation.

    Parameters
    ----------
    model : DeployableModel
        The model (not modified: the replay works on a copy).
    raw : DataFrame
        Rows of the model's source, as read from the file.
    explain : bool
        Add ``median_gb``, ``quantile``, ``p_failure`` and ``expected_waste_gb``.
    chunk_size : int
        Jobs per chunk (the replay carries the history from one chunk to the next).
    progress : bool
        Show a progress bar (tqdm) on standard error.
    """
    model = copy.deepcopy(model)
    rows = model.rows(raw).sort_values("time", kind="stable")
    peaks = target_gb(rows)
    replay = peaks is not None and bool(np.isfinite(peaks).any())
    starts = range(0, len(rows), max(1, int(chunk_size)))
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="predict", unit="chunk", total=len(starts))
    parts = []
    for start in starts:
        chunk = rows.iloc[start : start + chunk_size]
        part = model.explain(chunk) if explain else pd.DataFrame(
            {"allocation_gb": model.predict(chunk)}, index=chunk.index)
        parts.append(part)
        if replay:
            known = np.isfinite(target_gb(chunk))
            if known.any():
                model.observe(chunk[known])
    detail = pd.concat(parts) if parts else pd.DataFrame({"allocation_gb": []})
    out = pd.DataFrame(index=rows.index)
    for name in _ID_COLUMNS:
        if name in rows.columns:
            out[name] = rows[name].to_numpy()
            break
    task = model.schema.task
    if task in rows.columns:
        out[task] = rows[task].to_numpy()
    out["time"] = rows["time"].to_numpy()
    out["allocation_gb"] = detail["allocation_gb"].to_numpy()
    if explain:
        out["median_gb"] = _first(detail, _MEDIAN)
        out["quantile"] = _first(detail, _QUANTILE)
        out["p_failure"] = (1.0 - out["quantile"]).round(6)
        out["expected_waste_gb"] = np.maximum(out["allocation_gb"] - out["median_gb"], 0.0)
    if replay:
        out["peak_gb"] = target_gb(rows)
        out["under_allocated"] = (out["allocation_gb"] < out["peak_gb"]).where(out["peak_gb"].notna())
        out["waste_gb"] = np.maximum(out["allocation_gb"] - out["peak_gb"], 0.0)
    return out.reset_index(drop=True)
