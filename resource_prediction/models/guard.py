"""Do no harm: where a model has no evidence, it does not allocate below today's configuration.

A job whose group (task type, component) has seen fewer than ``min_history`` peaks is allocated
from what the model learnt of *other* groups: its error there is the largest and least known. The
guard keeps such a job at or above its configured request (``mode="max"``), or gives it the
request itself (``mode="request"``), so a new task type fails no more often than it does today.
Once the group's first jobs have run (replay, or ``observe`` in deployment) the model's own
allocation takes over. Rows without a usable request keep the model's allocation.
"""

from __future__ import annotations

import numpy as np

__all__ = ["GUARD_MODES", "guard_allocation"]

GUARD_MODES = ("max", "request")


def guard_allocation(
    alloc: np.ndarray,
    history_count: np.ndarray,
    request_gb: np.ndarray,
    mode: str = "max",
    min_history: int = 3,
) -> tuple[np.ndarray, np.ndarray]:
    """Guarded allocations and the mask of rows whose allocation the guard changed.

    Examples
    --------
    >>> a, changed = guard_allocation(np.array([2.0, 2.0]), np.array([0, 9]), np.array([4.0, 4.0]))
    >>> a.tolist(), changed.tolist()
    ([4.0, 2.0], [True, False])
    """
    if mode not in GUARD_MODES:
        raise ValueError(f"guard must be one of {GUARD_MODES} or None, got {mode!r}")
    alloc = np.asarray(alloc, dtype=float)
    request = np.asarray(request_gb, dtype=float)
    cold = np.nan_to_num(np.asarray(history_count, dtype=float), nan=0.0) < min_history
    usable = cold & np.isfinite(request) & (request > 0)
    target = np.maximum(alloc, request) if mode == "max" else request
    out = np.where(usable, target, alloc)
    return out, usable & (out != alloc)
