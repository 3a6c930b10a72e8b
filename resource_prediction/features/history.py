"""Causal memory history per group: the last peaks of each group and rolling statistics over them.

A :class:`GroupHistory` keeps, for every group key, the last :data:`LONG` peaks (GB), how many peaks it
has seen and the sums of an exponentially weighted mean. Its :meth:`~GroupHistory.replay` computes, for
rows given in time order, the statistics each row would have seen just before it ran: the history held
in the state plus the peaks of earlier rows of the same group in the batch, never its own or a later one.

The computation is vectorised: rows are sorted by group once (stable, so time order holds within a
group); each group gets a block of ``LONG`` slots for its stored peaks followed by its new peaks; the
window of a row is then a slice of that flat array, gathered for all rows at once with
``sliding_window_view``. The exponentially weighted mean is one ``lfilter`` pass over all peaks with the
carry-over between groups subtracted in closed form.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

#: Short and long rolling windows (number of previous peaks).
SHORT = 5
LONG = 20
#: Statistics computed per row, in this column order.
STAT_NAMES: tuple[str, ...] = ("prev", "p95_5", "mean_5", "max_20", "p95_20", "ewm")
QUANTILE = 0.95


def _sorted_quantile(sorted_win: np.ndarray, n: np.ndarray, q: float) -> np.ndarray:
    """Linear-interpolation quantile of the first ``n`` values of each ascending row (NaN if n = 0)."""
    pos = q * np.maximum(n - 1, 0)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
    rows = np.arange(sorted_win.shape[0])
    a = sorted_win[rows, lo]
    b = sorted_win[rows, hi]
    out = a + (b - a) * (pos - lo)
    out[n == 0] = np.nan
    return out


def window_stats(win: np.ndarray, n_avail: np.ndarray, num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Statistics of :data:`STAT_NAMES` from windows of the last ``LONG`` peaks.

    Parameters
    ----------
    win : ndarray of shape (m, LONG)
        Previous peaks, most recent last, NaN-padded on the left when fewer are known.
    n_avail : ndarray of shape (m,)
        Number of known peaks in each window.
    num, den : ndarray of shape (m,)
        Numerator and denominator of the exponentially weighted mean.
    """
    m = win.shape[0]
    out = np.empty((m, len(STAT_NAMES)))
    short = win[:, -SHORT:]
    n_short = np.minimum(n_avail, SHORT)
    out[:, 0] = win[:, -1]
    out[:, 1] = _sorted_quantile(np.sort(short, axis=1), n_short, QUANTILE)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[:, 2] = np.where(np.isnan(short), 0.0, short).sum(axis=1) / n_short
        out[:, 5] = num / den
    out[n_short == 0, 2] = np.nan
    out[den <= 0, 5] = np.nan
    out[:, 3] = np.fmax.reduce(win, axis=1)
    out[:, 4] = _sorted_quantile(np.sort(win, axis=1), np.minimum(n_avail, LONG), QUANTILE)
    return out


class HistoryFeatures:
    """Per-row history of one grouping level: statistics, peaks seen before and the row's group."""

    __slots__ = ("stats", "count")

    def __init__(self, stats: np.ndarray, count: np.ndarray):
        self.stats = stats
        self.count = count

    def take(self, order: np.ndarray) -> HistoryFeatures:
        """Rows rearranged: ``result[i] = self[order[i]]``."""
        return HistoryFeatures(self.stats[order], self.count[order])


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
        stats = np.full((codes.size, len(STAT_NAMES)), np.nan)
        count = np.zeros(codes.size)
        stats[known] = self.next_stats[sidx[known]]
        count[known] = self.count[sidx[known]]
        return HistoryFeatures(stats, count)

    def replay(
        self, codes: np.ndarray, keys: Sequence[Hashable], peaks: np.ndarray, *, commit: bool = False
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
        """
        n, n_keys = codes.size, len(keys)
        sidx = self.lookup(keys)
        known = sidx >= 0
        safe = np.where(known, sidx, 0)
        has_state = self.n_groups > 0
        count0 = np.where(known, self.count[safe], 0) if has_state else np.zeros(n_keys, np.int64)
        num0 = np.where(known, self.num[safe], 0.0) if has_state else np.zeros(n_keys)
        den0 = np.where(known, self.den[safe], 0.0) if has_state else np.zeros(n_keys)

        perm = np.argsort(codes, kind="stable")
        g = codes[perm]
        x = peaks[perm]
        valid = ~np.isnan(x)
        n_valid = np.bincount(g, weights=valid, minlength=n_keys).astype(np.int64)
        row_start = np.zeros(n_keys, dtype=np.int64)
        np.cumsum(np.bincount(g, minlength=n_keys)[:-1], out=row_start[1:])
        cum_valid = np.cumsum(valid) - valid  # valid rows before each sorted row
        valid_start = cum_valid[row_start] if n else np.zeros(n_keys, np.int64)
        c = cum_valid - valid_start[g]  # valid rows of the same group before the row

        # Flat layout: per group LONG slots of stored peaks, then its new peaks in time order.
        block = LONG + n_valid
        base = np.zeros(n_keys, dtype=np.int64)
        np.cumsum(block[:-1], out=base[1:])
        seq = np.full(int(block.sum()), np.nan)
        init = np.full((n_keys, LONG), np.nan)
        if has_state:
            init[known] = self.last[sidx[known]]
        seq[(base[:, None] + np.arange(LONG)).ravel()] = init.ravel()
        vrows = np.flatnonzero(valid)
        seq[base[g[vrows]] + LONG + c[vrows]] = x[vrows]
        windows = sliding_window_view(seq, LONG)
        end = base[g] + c  # start of the row's window: the LONG slots ending just before it
        avail0 = np.minimum(count0, LONG)

        # Exponentially weighted mean: y_j = r y_{j-1} + x_j over all new peaks, minus the carry-over
        # r^c y_{start-1} from the previous group; den follows den' = r den + 1 in closed form.
        r = 1.0 - self.alpha
        filt = np.zeros(vrows.size + 1)
        if vrows.size:
            from scipy.signal import lfilter

            filt[1:] = lfilter([1.0], [1.0, -r], x[vrows])

        def level(gi: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            rk = r**k
            vs = valid_start[gi]
            num = rk * num0[gi] + filt[vs + k] - rk * filt[vs]
            den = rk * den0[gi] + (1.0 - rk) / self.alpha
            return num, den

        num, den = level(g, c)
        stats = window_stats(windows[end], np.minimum(avail0[g] + c, LONG), num, den)
        out = HistoryFeatures(np.empty_like(stats), np.empty(n))
        out.stats[perm] = stats
        out.count[perm] = count0[g] + c

        if commit:
            gi = np.arange(n_keys)
            new_last = windows[base + n_valid]
            new_count = count0 + n_valid
            new_num, new_den = level(gi, n_valid)
            self._store(keys, sidx, new_last, new_count, new_num, new_den)
        return out

    def _store(self, keys, sidx, last, count, num, den) -> None:
        """Overwrite known groups and append new ones."""
        stats = window_stats(last, np.minimum(count, LONG), num, den)
        known = sidx >= 0
        rows = sidx[known]
        self.last[rows], self.count[rows] = last[known], count[known]
        self.num[rows], self.den[rows], self.next_stats[rows] = num[known], den[known], stats[known]
        new = np.flatnonzero(~known)
        if new.size:
            start = self.n_groups
            for i, j in enumerate(new):
                self.index[keys[j]] = start + i
            self.last = np.concatenate([self.last, last[new]])
            self.count = np.concatenate([self.count, count[new]])
            self.num = np.concatenate([self.num, num[new]])
            self.den = np.concatenate([self.den, den[new]])
            self.next_stats = np.concatenate([self.next_stats, stats[new]])
