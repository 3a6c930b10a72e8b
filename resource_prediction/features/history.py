"""Causal memory history per group: the last peaks of each group and rolling statistics over them.

A :class:`GroupHistory` keeps, for every group key, the last :data:`LONG` peaks (GB), how many peaks it
has seen and the sums of an exponentially weighted mean. Its :meth:`~GroupHistory.replay` computes, for
rows given in time order, the statistics each row would have seen just before it ran: the history held
in the state plus the peaks of earlier rows of the same group in the batch, never its own or a later one.

The computation is vectorised: rows are sorted by group once (stable, so time order holds within a
group); each group gets a block of ``LONG`` slots for its stored peaks followed by its new peaks; the
window of a row is then the slice of that flat array that ends just before the row. Summaries of every
such slice (newest, sum, largest and second largest of the last 5 and 20) come from ``LONG`` shifted
views of the flat array (:class:`WindowPeaks`); the 95th percentiles follow from the two largest.
The exponentially weighted mean is one ``lfilter`` pass over all peaks with the carry-over between
groups subtracted in closed form.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

#: Short and long rolling windows (number of previous peaks).
SHORT = 5
LONG = 20
#: Statistics computed per row, in this column order.
STAT_NAMES: tuple[str, ...] = ("prev", "p95_5", "mean_5", "max_20", "p95_20", "ewm")
QUANTILE = 0.95


# With n <= LONG = 20 values the 95th percentile (linear interpolation) lies between the two largest
# (position q (n - 1) = (n - 2) + frac for n >= 2), so two running maxima replace a sort.


class WindowPeaks:
    """Per-window summaries of every window ``seq[p : p + LONG]`` of a flat peak array.

    NaN marks "no peak" and may only pad a window on the left (the oldest slots). Each summary is a
    vector over window start positions, built from ``LONG`` shifted contiguous slices of ``seq``:
    no window is ever copied or sorted.
    """

    __slots__ = ("newest", "short_max", "short_second", "short_sum", "long_max", "long_second")

    def __init__(self, seq: np.ndarray):
        m = seq.size - LONG + 1
        missing = np.isnan(seq)
        neg = np.where(missing, -np.inf, seq)
        zero = np.where(missing, 0.0, seq)
        first, second = neg[LONG - 1 :].copy(), np.full(m, -np.inf)
        total = zero[LONG - 1 :].copy()

        def push(j: int) -> None:
            x = neg[j : j + m]
            np.maximum(second, np.minimum(first, x), out=second)
            np.maximum(first, x, out=first)

        for j in range(LONG - 2, LONG - SHORT - 1, -1):
            push(j)
            total += zero[j : j + m]
        self.short_max, self.short_second, self.short_sum = first.copy(), second.copy(), total
        for j in range(LONG - SHORT - 1, -1, -1):
            push(j)
        self.long_max, self.long_second = first, second
        self.newest = seq[LONG - 1 :]

    def stats(
        self, start: np.ndarray, n_avail: np.ndarray, num: np.ndarray, den: np.ndarray
    ) -> list[np.ndarray]:
        """Statistics of :data:`STAT_NAMES` (one array each) for windows starting at ``start``.

        Parameters
        ----------
        start : ndarray of int
            Window start positions.
        n_avail : ndarray of int
            Known peaks in each window (the rest is NaN padding on the left).
        num, den : ndarray
            Numerator and denominator of the exponentially weighted mean.
        """
        n_short = np.minimum(n_avail, SHORT)
        n_long = np.minimum(n_avail, LONG)
        long_max = self.long_max[start]
        with np.errstate(invalid="ignore", divide="ignore"):
            out = [
                self.newest[start],
                _p95(self.short_max[start], self.short_second[start], n_short),
                self.short_sum[start] / n_short,
                long_max,
                _p95(long_max, self.long_second[start], n_long),
                num / den,
            ]
        empty = np.flatnonzero(n_long == 0)
        if empty.size:
            for values in out[:5]:
                values[empty] = np.nan
        out[5][den <= 0] = np.nan
        return out


def _running_max(g: np.ndarray, x: np.ndarray, max0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Largest peak each row's group saw before the row, and each group's largest after all rows.

    ``g`` are the rows' group codes (time order within a group), ``x`` their peaks (``-inf`` where
    unknown), ``max0`` the stored maxima per group (``-inf`` for none).
    """
    inclusive = pd.Series(x).groupby(g, sort=False).cummax()
    before = inclusive.groupby(g, sort=False).shift(1, fill_value=-np.inf).to_numpy()
    group_max = max0.copy()
    np.maximum.at(group_max, g, x)
    return np.maximum(before, max0[g]), group_max


def _p95(largest: np.ndarray, second: np.ndarray, n: np.ndarray) -> np.ndarray:
    """95th percentile (linear interpolation) of ``n`` values from their two largest."""
    frac = QUANTILE * (n - 1) - (n - 2)
    return np.where(n >= 2, second + frac * (largest - second), largest)


class HistoryFeatures:
    """Per-row history of one grouping level: statistics (one array per :data:`STAT_NAMES`), the
    number of peaks the row's group had seen and the largest of them (NaN before the first)."""

    __slots__ = ("stats", "count", "max_seen")

    def __init__(self, stats: list[np.ndarray], count: np.ndarray, max_seen: np.ndarray | None = None):
        self.stats = stats
        self.count = count
        self.max_seen = np.full(np.shape(count), np.nan) if max_seen is None else max_seen


class _State(NamedTuple):
    """The stored history of each key of a batch: state row (-1: new group), peaks seen, the
    exponentially weighted mean's sums and the largest peak (``-inf`` for none)."""

    sidx: np.ndarray
    count: np.ndarray
    num: np.ndarray
    den: np.ndarray
    peak_max: np.ndarray


class _Rows(NamedTuple):
    """A batch's rows sorted by group, stable (time order holds within a group)."""

    perm: np.ndarray  # sorted position -> input row
    g: np.ndarray  # group code of each sorted row
    x: np.ndarray  # peak of each sorted row (NaN: unknown)
    valid: np.ndarray  # the peak is known
    vrows: np.ndarray  # sorted positions of the known peaks
    n_valid: np.ndarray  # known peaks per group
    valid_start: np.ndarray  # known peaks of the batch before each group's first row
    c: np.ndarray  # known peaks of the same group before each sorted row
    row_valid_start: np.ndarray  # valid_start of each sorted row's group
    before: np.ndarray  # known peaks of the batch before each sorted row


def _sort_by_group(codes: np.ndarray, peaks: np.ndarray, n_keys: int) -> _Rows:
    """Sort rows by group and count, per row, the known peaks of its group before it."""
    # Stable sort keeps time order within a group; 16-bit codes let numpy use a radix sort.
    if n_keys <= 1:
        perm = np.arange(codes.size)
    else:
        perm = np.argsort(codes.astype(np.uint16) if n_keys <= 65536 else codes, kind="stable")
    g = codes[perm]
    x = peaks[perm]
    valid = ~np.isnan(x)
    n_valid = np.bincount(g, weights=valid, minlength=n_keys).astype(np.int64)
    row_start = np.zeros(n_keys, dtype=np.int64)
    np.cumsum(np.bincount(g, minlength=n_keys)[:-1], out=row_start[1:])
    cum_valid = np.cumsum(valid) - valid  # valid rows before each sorted row
    valid_start = cum_valid[row_start]
    row_valid_start = valid_start[g]
    c = cum_valid - row_valid_start
    return _Rows(perm, g, x, valid, np.flatnonzero(valid), n_valid, valid_start, c, row_valid_start,
                 cum_valid)


class _EwmLevel:
    """The exponentially weighted mean's sums after ``k`` new peaks of group ``gi``.

    ``y_j = r y_{j-1} + x_j`` runs once over all new peaks (one ``lfilter`` pass); a group's level
    subtracts the carry-over ``r^k y_{start-1}`` of the groups before it, and ``den`` follows
    ``den' = r den + 1`` in closed form. The powers ``r^k`` are tabulated once per batch.
    """

    def __init__(self, alpha: float, rows: _Rows, state: _State):
        self.alpha, self.r = alpha, 1.0 - alpha
        self.valid_start, self.num0, self.den0 = rows.valid_start, state.num, state.den
        self.carry = bool(state.num.any() or state.den.any())
        self.filt = np.zeros(rows.vrows.size + 1)
        if rows.vrows.size:
            from scipy.signal import lfilter

            self.filt[1:] = lfilter([1.0], [1.0, -self.r], rows.x[rows.vrows])
        # r^k underflows to exactly 0 beyond 2^-1075: the table stops there.
        underflow = 2 if self.r <= 0 else int(np.ceil(-1080 / np.log2(self.r))) + 2
        size = min(int(rows.n_valid.max(initial=0)), underflow) + 1
        self.powers = self.r ** np.arange(size, dtype=float)
        self.capped = size <= int(rows.n_valid.max(initial=0))  # some k reach past the table

    def at_rows(self, rows: _Rows) -> tuple[np.ndarray, np.ndarray]:
        """The sums before each sorted row (``gi = rows.g``, ``k = rows.c``), from the positions
        the sort already holds."""
        rk = self.powers[np.minimum(rows.c, self.powers.size - 1) if self.capped else rows.c]
        return self._sums(rk, self.filt[rows.before], self.filt[rows.row_valid_start], rows.g)

    def __call__(self, gi: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rk = self.powers[np.minimum(k, self.powers.size - 1)]
        vs = self.valid_start[gi]
        return self._sums(rk, self.filt[vs + k], self.filt[vs], gi)

    def _sums(self, rk: np.ndarray, upto: np.ndarray, start: np.ndarray,
              gi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``num`` and ``den`` from the filter at the row (``upto``) and at its group's start."""
        num = upto - rk * start
        den = (1.0 - rk) / self.alpha
        if self.carry:  # a stored history carries over
            num += rk * self.num0[gi]
            den += rk * self.den0[gi]
        return num, den


def _in_row_order(
    rows: _Rows, state: _State, stats: list[np.ndarray], seen_max: np.ndarray,
    out_index: np.ndarray | None,
) -> HistoryFeatures:
    """The sorted rows' features written back to their output positions."""
    n = rows.perm.size
    dest = rows.perm if out_index is None else out_index[rows.perm]
    out = HistoryFeatures([np.empty(n) for _ in stats], np.empty(n), np.empty(n))
    for o, values in zip(out.stats, stats, strict=True):
        o[dest] = values
    out.count[dest] = state.count[rows.g] + rows.c
    out.max_seen[dest] = np.where(np.isfinite(seen_max), seen_max, np.nan)
    return out


class GroupHistory:
    """The last peaks of every group of one grouping level, and rolling statistics over them.

    Parameters
    ----------
    alpha : float
        Smoothing of the exponentially weighted mean (weight of the newest peak).

    Attributes
    ----------
    index : dict
        Group key to row of the arrays below.
    last : ndarray of shape (n_groups, LONG)
        Each group's last peaks, most recent last, NaN-padded on the left.
    count : ndarray of shape (n_groups,)
        Number of peaks each group has seen.
    num, den : ndarray of shape (n_groups,)
        Sums of the exponentially weighted mean: ``num / den`` is the level.
    peak_max : ndarray of shape (n_groups,)
        The largest peak each group has seen (all of its history, not only the last ``LONG``).
    next_stats : ndarray of shape (n_groups, len(STAT_NAMES))
        The statistics the group's next job sees (what a transform without targets returns).
    """

    def __init__(self, alpha: float):
        self.alpha = float(alpha)
        self.index: dict[Hashable, int] = {}
        self.last = np.empty((0, LONG))
        self.count = np.empty(0, dtype=np.int64)
        self.num = np.empty(0)
        self.den = np.empty(0)
        self.peak_max = np.empty(0)
        self.next_stats = np.empty((0, len(STAT_NAMES)))

    @property
    def n_groups(self) -> int:
        return len(self.index)

    def lookup(self, keys: Sequence[Hashable]) -> np.ndarray:
        """State row of each key, -1 for groups never seen."""
        get = self.index.get
        return np.fromiter((get(k, -1) for k in keys), dtype=np.intp, count=len(keys))

    def current(self, codes: np.ndarray, keys: Sequence[Hashable]) -> HistoryFeatures:
        """What jobs of groups ``keys[codes]`` see now, from the stored history only."""
        sidx = self.lookup(keys)[codes]
        known = sidx >= 0
        if self.n_groups == 0:
            return HistoryFeatures([np.full(codes.size, np.nan) for _ in STAT_NAMES], np.zeros(codes.size))
        safe = np.where(known, sidx, 0)
        count = np.where(known, self.count[safe], 0).astype(np.float64)
        table = self.next_stats[safe]
        table[~known] = np.nan
        peak_max = np.where(known, self.peak_max[safe], np.nan)
        return HistoryFeatures(list(table.T.copy()), count, peak_max)

    def replay(
        self,
        codes: np.ndarray,
        keys: Sequence[Hashable],
        peaks: np.ndarray,
        *,
        commit: bool = False,
        out_index: np.ndarray | None = None,
    ) -> HistoryFeatures:
        """Causal history of rows in time order, each seeing the state plus earlier rows' peaks.

        Parameters
        ----------
        codes : ndarray of int of shape (n,)
            Group of each row as an index into ``keys`` (every key has at least one row).
        keys : sequence
            Distinct group keys.
        peaks : ndarray of shape (n,)
            Peak (GB) of each row; NaN where unknown (such rows get features but add no history).
        commit : bool
            Append the rows' peaks to the stored history.
        out_index : ndarray of int of shape (n,), optional
            Output position of each row (default: the input order); saves a gather when the caller
            sorted the rows by time.
        """
        if codes.size == 0:
            return HistoryFeatures(np.empty((len(STAT_NAMES), 0)), np.empty(0))
        state = self._state_of(keys)
        rows = _sort_by_group(codes, peaks, len(keys))
        seq, base = self._window_sequence(state, rows)
        peaks_at = WindowPeaks(seq)
        level = _EwmLevel(self.alpha, rows, state)
        start = base[rows.g] + rows.c  # the LONG slots ending just before the row
        n_avail = np.minimum(np.minimum(state.count, LONG)[rows.g] + rows.c, LONG)
        stats = peaks_at.stats(start, n_avail, *level.at_rows(rows))
        seen_max, group_max = _running_max(rows.g, np.where(rows.valid, rows.x, -np.inf), state.peak_max)
        out = _in_row_order(rows, state, stats, seen_max, out_index)
        if commit:
            end = base + rows.n_valid
            count = state.count + rows.n_valid
            num, den = level(np.arange(len(keys)), rows.n_valid)
            next_stats = peaks_at.stats(end, np.minimum(count, LONG), num, den)
            last = seq[end[:, None] + np.arange(LONG)]
            self._store(keys, state.sidx, last, count, num, den, np.column_stack(next_stats), group_max)
        return out

    def _state_of(self, keys: Sequence[Hashable]) -> _State:
        """The stored history of each key (empty for groups never seen)."""
        sidx = self.lookup(keys)
        n_keys = len(keys)
        if self.n_groups == 0:
            return _State(sidx, np.zeros(n_keys, np.int64), np.zeros(n_keys), np.zeros(n_keys),
                          np.full(n_keys, -np.inf))
        known = sidx >= 0
        safe = np.where(known, sidx, 0)
        return _State(
            sidx,
            np.where(known, self.count[safe], 0),
            np.where(known, self.num[safe], 0.0),
            np.where(known, self.den[safe], 0.0),
            np.where(known, self.peak_max[safe], -np.inf),
        )

    def _window_sequence(self, state: _State, rows: _Rows) -> tuple[np.ndarray, np.ndarray]:
        """The flat peak array (per group ``LONG`` slots of stored peaks, then its new peaks in time
        order) and each group's first position in it."""
        n_keys = state.sidx.size
        block = LONG + rows.n_valid
        base = np.zeros(n_keys, dtype=np.int64)
        np.cumsum(block[:-1], out=base[1:])
        seq = np.full(int(block.sum()), np.nan)
        init = np.full((n_keys, LONG), np.nan)
        known = state.sidx >= 0
        if self.n_groups > 0:
            init[known] = self.last[state.sidx[known]]
        seq[(base[:, None] + np.arange(LONG)).ravel()] = init.ravel()
        seq[base[rows.g[rows.vrows]] + LONG + rows.c[rows.vrows]] = rows.x[rows.vrows]
        return seq, base

    def _store(self, keys, sidx, last, count, num, den, stats, peak_max) -> None:
        """Overwrite known groups and append new ones."""
        known = sidx >= 0
        rows = sidx[known]
        self.last[rows], self.count[rows] = last[known], count[known]
        self.num[rows], self.den[rows], self.next_stats[rows] = num[known], den[known], stats[known]
        self.peak_max[rows] = peak_max[known]
        new = np.flatnonzero(~known)
        if new.size:
            start = self.n_groups
            for i, j in enumerate(new):
                self.index[keys[j]] = start + i
            self.last = np.concatenate([self.last, last[new]])
            self.count = np.concatenate([self.count, count[new]])
            self.num = np.concatenate([self.num, num[new]])
            self.den = np.concatenate([self.den, den[new]])
            self.peak_max = np.concatenate([self.peak_max, peak_max[new]])
            self.next_stats = np.concatenate([self.next_stats, stats[new]])


class MeanHistory:
    """Each group's count and exponentially weighted mean of a value (no window statistics):
    what :class:`GroupHistory` keeps of the ``ewm`` statistic, at a fraction of its cost.

    Parameters
    ----------
    alpha : float
        Weight of the newest value.
    """

    def __init__(self, alpha: float):
        self.alpha = float(alpha)
        self.index: dict[Hashable, int] = {}
        self.count = np.empty(0, dtype=np.int64)
        self.num = np.empty(0)
        self.den = np.empty(0)

    def _state_of(self, keys: Sequence[Hashable]) -> _State:
        get = self.index.get
        sidx = np.fromiter((get(k, -1) for k in keys), dtype=np.intp, count=len(keys))
        known = sidx >= 0
        safe = np.where(known, sidx, 0)
        none = np.full(len(keys), -np.inf)  # no largest value is kept
        if not self.index:
            zeros = np.zeros(len(keys))
            return _State(sidx, zeros.astype(np.int64), zeros, zeros.copy(), none)
        return _State(sidx, np.where(known, self.count[safe], 0), np.where(known, self.num[safe], 0.0),
                      np.where(known, self.den[safe], 0.0), none)

    def current(self, codes: np.ndarray, keys: Sequence[Hashable]) -> tuple[np.ndarray, np.ndarray]:
        """Mean (NaN for a group without values) and count the rows' groups have now."""
        state = self._state_of(keys)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(state.den > 0, state.num / state.den, np.nan)
        return mean[codes], state.count[codes].astype(np.float64)

    def replay(self, codes: np.ndarray, keys: Sequence[Hashable], values: np.ndarray, *,
               commit: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Mean and count of each row's group before the row (rows in time order; NaN values add
        nothing); ``commit`` stores the rows' values."""
        return replay_means([self], codes, keys, values, commit=commit)[0]

    def _replay_sorted(self, rows: _Rows, keys: Sequence[Hashable], dest: np.ndarray,
                       count: np.ndarray | None, *, commit: bool) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`replay` of sorted ``rows`` written to positions ``dest``; ``count``: the rows'
        counts when already known (another history of the same groups)."""
        state = self._state_of(keys)
        level = _EwmLevel(self.alpha, rows, state)
        num, den = level.at_rows(rows)
        mean = np.empty(rows.perm.size)
        with np.errstate(invalid="ignore", divide="ignore"):
            num /= den  # den > 0 but for groups without values, whose 0 / 0 is NaN
        mean[dest] = num
        if count is None:
            count = np.empty(rows.perm.size)
            count[dest] = state.count[rows.g] + rows.c if state.count.any() else rows.c
        if commit:
            num, den = level(np.arange(len(keys)), rows.n_valid)
            total = state.count + rows.n_valid
            known = state.sidx >= 0
            self.count[state.sidx[known]] = total[known]
            self.num[state.sidx[known]], self.den[state.sidx[known]] = num[known], den[known]
            new = np.flatnonzero(~known)
            for i, j in enumerate(new):
                self.index[keys[j]] = self.count.size + i
            self.count = np.concatenate([self.count, total[new]])
            self.num = np.concatenate([self.num, num[new]])
            self.den = np.concatenate([self.den, den[new]])
        return mean, count


def replay_means(histories: Sequence[MeanHistory], codes: np.ndarray, keys: Sequence[Hashable],
                 values: np.ndarray, *, commit: bool = False,
                 out_index: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """:meth:`MeanHistory.replay` of several histories of the same groups (the rows sorted once);
    the ``i``-th row's mean and count go to position ``out_index[i]`` (default ``i``)."""
    if codes.size == 0:
        return [(np.empty(0), np.empty(0)) for _ in histories]
    rows = _sort_by_group(codes, values, len(keys))
    dest = rows.perm if out_index is None else out_index[rows.perm]
    out, count = [], None
    for history in histories:  # the same groups: the same counts
        mean, count = history._replay_sorted(rows, keys, dest, count, commit=commit)
        out.append((mean, count))
    return out
