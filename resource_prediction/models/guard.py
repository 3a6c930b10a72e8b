"""Do no harm: where a model has no evidence, it does not allocate below today's configuration.

A job whose group has seen fewer than ``min_history`` peaks is allocated from what the model learnt
of *other* groups: its error there is the largest and least known. The guard holds such a job
to what runs today: its configured request (``mode="request"``), or at least the request capped
at what its peers have needed (``mode="max"``: ``min(request, peers)``, with ``peers`` the recent
maximum peak of the nearest group with history, so a generous request does not inflate a job that
the evidence says is small; on real workflow traces the peers of a new process are other processes,
and that cap failed tasks the request would have run).

A group with a few peaks (fewer than ``settle_history``) has its own evidence, but too little for
the model's calibration to speak for it: its jobs get at least the smaller of their request and
``seen_gb`` (the caller passes the largest peak the group has seen times a margin, what users
running ``max seen x 1.2`` give them). Once the group has that much history the model's own
allocation takes over, except for rows the caller marks ``unsettled`` (a task type the model was
never fitted on), which keep that floor. Once such a row's group has ``cap_history`` peaks, the
same ``min(request, seen_gb)`` is also its ceiling: the model's residual shape comes from other
types, and that many peaks of its own make the rule users run the better-founded allocation. Rows
with neither a usable request nor peers keep the model's allocation; data without any request
(``request_gb=None``) get the floors of the peers and of the group's own peaks.
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
    request_gb: np.ndarray | None,
    peers_gb: np.ndarray | None = None,
    mode: str = "max",
    min_history: int = 1,
    seen_gb: np.ndarray | None = None,
    settle_history: int = 0,
    unsettled: np.ndarray | None = None,
    cap_history: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Guarded allocations and the mask of rows whose allocation the guard changed.

    Rows with ``history_count < min_history`` get the ``mode`` floor; rows with
    ``min_history <= history_count < settle_history`` (or ``unsettled``) at least
    ``min(request_gb, seen_gb)``; ``unsettled`` rows with ``history_count >= cap_history`` (None:
    none) exactly that.

    Examples
    --------
    >>> a, changed = guard_allocation(np.array([2.0, 2.0, 2.0]), np.array([0, 0, 9]),
    ...                               np.array([4.0, 40.0, 4.0]), peers_gb=np.array([8.0, 8.0, 8.0]))
    >>> a.tolist(), changed.tolist()
    ([4.0, 8.0, 2.0], [True, True, False])
    >>> a, _ = guard_allocation(np.array([2.0, 2.0, 2.0]), np.array([0, 3, 30]),
    ...                         np.array([4.0, 4.0, 4.0]), mode="request",
    ...                         seen_gb=np.array([3.0, 3.0, 3.0]), settle_history=20)
    >>> a.tolist()
    [4.0, 3.0, 2.0]
    """
    if mode not in GUARD_MODES:
        raise ValueError(f"guard must be one of {GUARD_MODES} or None, got {mode!r}")
    alloc = np.asarray(alloc, dtype=float)
    request = np.full(alloc.size, np.nan) if request_gb is None else _usable(request_gb)
    cold = np.nan_to_num(np.asarray(history_count, dtype=float), nan=0.0) < min_history
    if mode == "request":
        target = request
    else:
        peers = np.full(alloc.size, np.nan) if peers_gb is None else _usable(peers_gb)
        floor = np.fmin(request, peers)  # either one where the other is missing
        target = np.fmax(alloc, floor)
    out = np.where(cold & np.isfinite(target), target, alloc)
    if seen_gb is not None:
        count = np.nan_to_num(np.asarray(history_count, dtype=float), nan=0.0)
        young = ~cold & (count < settle_history)  # none where settle_history <= min_history
        if unsettled is not None:
            young |= ~cold & np.asarray(unsettled, dtype=bool)
        floor = np.fmin(request, _usable(seen_gb))
        out = np.where(young & np.isfinite(floor), np.fmax(out, floor), out)
        if unsettled is not None and cap_history is not None:
            capped = np.asarray(unsettled, dtype=bool) & (count >= cap_history) & np.isfinite(floor)
            out = np.where(capped, np.fmin(out, floor), out)
    return out, out != alloc
