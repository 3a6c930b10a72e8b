"""The static level: a ridge regression of ``log(peak)`` on what is known before a job runs.

:class:`StaticLevel` prices a job's configuration (one-hot categories, ``log1p`` of the numeric
features), optionally a slope in time per category, pairs of categories and a slope of each
numeric feature per category, pooled over all groups.
:class:`~resource_prediction.features.level.JobLevel` adds each group's recent residuals to it
(``hist_grp_level``).
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

__all__ = ["INTERACTION_PENALTY", "MARGIN", "TREND_HORIZON", "TREND_PENALTY", "StaticLevel"]

#: Factor by which a static level may leave the range of the fitted peaks.
MARGIN = 10.0
#: Spans of the fitted period beyond its end that a trend extrapolates (later jobs keep its end).
TREND_HORIZON = 0.5
#: Ridge penalty of the trend's slopes, relative to ``alpha`` (time runs from -1 to 1 over the
#: fitted span): on 2,000 generated jobs (seeds 0-7) the cost-aware model's location erred from
#: the true log-mean by 0.133 with 10 times ``alpha``, 0.120 with 30 times, 0.123 with 100 times
#: (seeds 0-5: 0.154 with ``alpha`` itself; 0.145 without a trend).
TREND_PENALTY = 30.0
#: Ridge penalty of the interactions' coefficients, relative to ``alpha``.
INTERACTION_PENALTY = 5.0


class StaticLevel:
    """Ridge regression of ``log(peak)`` on categorical codes and numeric features.

    Parameters
    ----------
    alpha : float
        Ridge penalty (features are one-hot or standardised, so one penalty fits all).
    trend : str or None
        Categorical feature each of whose categories gets its own slope in time (on top of one
        slope for all jobs), penalised :data:`TREND_PENALTY` times ``alpha``; time runs from -1 to
        1 over the fitted jobs and stops :data:`TREND_HORIZON` spans after them. None: no trend.
    interactions : tuple of (str, str)
        Pairs of categorical features each combination of whose categories gets its own
        coefficient (on top of each feature's own), penalised :data:`INTERACTION_PENALTY` times
        ``alpha``: one component's debug builds may need twice the memory of its release builds,
        another's about the same.
    slopes : tuple of str
        Categorical features each of whose categories gets its own slope of every numeric feature
        (on top of the feature's own coefficient), penalised :data:`INTERACTION_PENALTY` times
        ``alpha``: one component's memory may grow with its parallel jobs, another's hardly.

    Attributes
    ----------
    intercept_ : float
    category_coef_ : dict of str to ndarray
        Per categorical feature, one coefficient per code (the vocabulary's order).
    numeric_ : dict of str to tuple of float
        Per numeric feature: mean and scale of its ``log1p`` (for standardising), coefficient.
    bounds_ : tuple of float
        The static level stays within the fitted peaks' range widened :data:`MARGIN` times on
        either side (a configuration unlike any fitted one does not extrapolate without bound).
    span_ : tuple of float or None
        First and last fitted time (ns); None: no trend was fitted (``trend`` None or missing,
        or no time given).
    interaction_coef_ : dict of (str, str) to ndarray
        Per pair of ``interactions`` (both features given), one coefficient per combination of
        their codes (first feature by rows).
    slope_coef_ : dict of (str, str) to ndarray
        Per categorical feature of ``slopes`` and numeric feature, one slope per code.
    slope_ : float
        Slope of all jobs.
    trend_coef_ : ndarray or None
        Slope of each category of ``trend``.
    """

    def __init__(self, alpha: float = 1.0, trend: str | None = None,
                 interactions: tuple[tuple[str, str], ...] = (), slopes: tuple[str, ...] = ()):
        self.alpha = alpha
        self.trend = trend
        self.interactions = interactions
        self.slopes = slopes

    def __setstate__(self, state: dict) -> None:
        """Static levels pickled before ``interactions`` (format 10.1) have none, those before
        ``slopes`` (format 10.5) no slopes per category."""
        state.setdefault("interactions", ())
        state.setdefault("interaction_coef_", {})
        state.setdefault("slopes", ())
        state.setdefault("slope_coef_", {})
        self.__dict__.update(state)

    @staticmethod
    def _log1p(values: np.ndarray) -> np.ndarray:
        return np.log1p(np.maximum(np.nan_to_num(values, nan=0.0), 0.0))

    def _time(self, ns: np.ndarray) -> np.ndarray:
        """Time on the fitted span's scale (-1 at its start, 1 at its end), at most
        :data:`TREND_HORIZON` spans beyond its end."""
        start, end = self.span_
        t = 2.0 * (np.asarray(ns, dtype=float) - start) / (end - start) - 1.0
        return np.clip(t, -1.0, 1.0 + 2.0 * TREND_HORIZON)

    def fit(self, codes: dict[str, tuple[np.ndarray, int]], numeric: dict[str, np.ndarray],
            log_peaks: np.ndarray, ns: np.ndarray | None = None) -> StaticLevel:
        """Fit on rows with a finite ``log_peaks``.

        ``codes`` maps each categorical feature to its codes and number of categories; ``numeric``
        each numeric feature to its (filled) values; ``ns`` the jobs' times (for ``trend``).
        """
        rows = np.flatnonzero(np.isfinite(log_peaks))
        seen = log_peaks[rows]
        widen = np.log(MARGIN)
        self.bounds_ = (float(seen.min()) - widen, float(seen.max()) + widen) if rows.size else (-widen, widen)
        blocks, offsets = [], {}
        start = 0
        for name, (c, size) in codes.items():
            blocks.append(sparse.csr_matrix(
                (np.ones(rows.size), (np.arange(rows.size), c[rows])), shape=(rows.size, size)))
            offsets[name] = (start, size)
            start += size
        pairs = {}
        for a, b in self.interactions:
            if a in codes and b in codes:
                (ca, size_a), (cb, size_b) = codes[a], codes[b]
                blocks.append(sparse.csr_matrix((np.ones(rows.size), (np.arange(rows.size), ca[rows] * size_b + cb[rows])),
                                                shape=(rows.size, size_a * size_b)))
                pairs[a, b] = (start, size_a, size_b)
                start += size_a * size_b
        self.numeric_ = {}
        columns = []
        for name, values in numeric.items():
            x = self._log1p(values[rows])
            mean, scale = (float(x.mean()), float(x.std())) if rows.size else (0.0, 0.0)
            if scale > 0:
                self.numeric_[name] = (mean, scale, 0.0)
                columns.append((x - mean) / scale)
        by_category = {}
        for cat in (c for c in self.slopes if c in codes):
            c, size = codes[cat]
            for name, x in zip(self.numeric_, columns, strict=True):
                blocks.append(sparse.csr_matrix((x, (np.arange(rows.size), c[rows])), shape=(rows.size, size)))
                by_category[cat, name] = (start, size)
                start += size
        self.span_, slopes = None, slice(0, 0)
        if self.trend in codes and ns is not None and rows.size > 1 and np.ptp(ns[rows]) > 0:
            self.span_ = (float(ns[rows].min()), float(ns[rows].max()))
            t = self._time(ns[rows])
            c, size = codes[self.trend]
            blocks.append(sparse.csr_matrix((t, (np.arange(rows.size), c[rows])), shape=(rows.size, size)))
            slopes = slice(start, start + size)
            start += size
            columns.append(t)  # the slope of all jobs, last of the numeric columns
        blocks.append(sparse.csr_matrix(np.column_stack([*columns, np.ones(rows.size)])))
        design = sparse.hstack(blocks).tocsr()
        # Normal equations, solved exactly (the same coefficients whatever the row order); the
        # intercept (last column) is not penalised.
        gram = (design.T @ design).toarray()
        penalty = np.full(gram.shape[0], float(self.alpha))
        if self.span_ is not None:
            penalty[slopes] *= TREND_PENALTY
            penalty[-2] *= TREND_PENALTY  # the slope of all jobs
        for at, size_a, size_b in pairs.values():
            penalty[at : at + size_a * size_b] *= INTERACTION_PENALTY
        for at, size in by_category.values():
            penalty[at : at + size] *= INTERACTION_PENALTY
        penalty[-1] = 0.0
        coef = np.linalg.lstsq(gram + np.diag(penalty), design.T @ log_peaks[rows], rcond=None)[0]
        self.intercept_ = float(coef[-1]) if rows.size else 0.0
        self.category_coef_ = {name: coef[a : a + size].copy() for name, (a, size) in offsets.items()}
        self.interaction_coef_ = {pair: coef[at : at + size_a * size_b].reshape(size_a, size_b)
                                  for pair, (at, size_a, size_b) in pairs.items()}
        self.slope_coef_ = {key: coef[at : at + size].copy() for key, (at, size) in by_category.items()}
        self.trend_coef_ = coef[slopes].copy() if self.span_ is not None else None
        self.slope_ = float(coef[-2]) if self.span_ is not None else 0.0
        for name, value in zip(self.numeric_, coef[start : start + len(self.numeric_)], strict=True):
            mean, scale, _ = self.numeric_[name]
            self.numeric_[name] = (mean, scale, float(value))
        return self

    def predict(self, codes: dict[str, np.ndarray], numeric: dict[str, np.ndarray], n: int,
                ns: np.ndarray | None = None) -> np.ndarray:
        """Static level (log GB) of ``n`` rows; codes outside the fitted vocabularies count 0."""
        out = np.full(n, self.intercept_)
        for name, coef in self.category_coef_.items():
            out += self._coef(coef, codes[name])
        for (a, b), coef in self.interaction_coef_.items():
            ca, cb = codes[a], codes[b]
            known = (ca < coef.shape[0]) & (cb < coef.shape[1])
            out += np.where(known, coef[np.where(known, ca, 0), np.where(known, cb, 0)], 0.0)
        if self.span_ is not None:
            if ns is None:
                raise ValueError("this static level has a trend: predict needs the jobs' times (ns)")
            out += (self.slope_ + self._coef(self.trend_coef_, codes[self.trend])) * self._time(ns)
        for name, (mean, scale, value) in self.numeric_.items():
            out += value * (self._log1p(numeric[name]) - mean) / scale
            for cat in self.slopes:
                if (cat, name) in self.slope_coef_:
                    x = (self._log1p(numeric[name]) - mean) / scale
                    out += self._coef(self.slope_coef_[cat, name], codes[cat]) * x
        return np.clip(out, *self.bounds_)

    @staticmethod
    def _coef(coef: np.ndarray, c: np.ndarray) -> np.ndarray:
        return np.where(c < coef.size, coef[np.minimum(c, coef.size - 1)], 0.0)
