"""Do no harm: where a model has no evidence, it does not allocate below today's configuration.

A job whose group has seen fewer than ``min_history`` peaks is allocated from what the model learnt
of *other* groups: its error there is the largest and least known. The guard keeps such a job at or
above a floor: its configured request, capped at what its peers have needed (``mode="max"``, the
default: the floor is ``min(request, peers)``, with ``peers`` the recent maximum peak of the
nearest group with history, so a generous request does not inflate a job that the evidence says is
small); ``mode="request"`` gives it the request itself. A new task type thus fails no more often
than its request or its peers' evidence allow. Once the group's first jobs have run (replay, or
``observe`` in deployment) the model's own allocation takes over. Rows with neither a usable
request nor peers keep the model's allocation.
"""

from __future__ import annotations

import numpy as np

__all__ = ["GUARD_MODES", "guard_allocation"]

GUARD_MODES = ("max", "request")


def _usable(values) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return np.where(np.isfinite(values) & (values > 0), values, np.nan)


def guard_allocation(
    alloc: np.ndarray,
    history_count: np.ndarray,
    request_gb: np.ndarray,
    peers_gb: np.ndarray | None = None,
    mode: str = "max",
    min_history: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Guarded allocations and the mask of rows whose allocation the guard changed.

    Examples
    --------
    >>> a, changed = guard_allocation(np.array([2.0, 2.0, 2.0]), np.array([0, 0, 9]),
    ...                               np.array([4.0, 40.0, 4.0]), peers_gb=np.array([8.0, 8.0, 8.0]))
    >>> a.tolist(), changed.tolist()
    ([4.0, 8.0, 2.0], [True, True, False])
    """
    if mode not in GUARD_MODES:
        raise ValueError(f"guard must be one of {GUARD_MODES} or None, got {mode!r}")
    alloc = np.asarray(alloc, dtype=float)
    request = _usable(request_gb)
    cold = np.nan_to_num(np.asarray(history_count, dtype=float), nan=0.0) < min_history
    if mode == "request":
        target = request
    else:
        peers = np.full(alloc.size, np.nan) if peers_gb is None else _usable(peers_gb)
        floor = np.fmin(request, peers)  # either one where the other is missing
        target = np.fmax(alloc, floor)
    out = np.where(cold & np.isfinite(target), target, alloc)
    return out, out != alloc
