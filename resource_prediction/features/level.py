"""The job-adjusted level ``hist_grp_level``: a group's recent level, net of configuration.

Jobs of one history group still differ in configuration (location, test phase, targets, local
parallelism; CPUs and scope of a workflow task): a group's recent peaks mix those differences
into its level. :class:`~resource_prediction.features.static_level.StaticLevel` is a ridge
regression of ``log(peak)`` on what is known before a job runs (one-hot categories, ``log1p`` of
the numeric features), pooled over all groups.
:class:`JobLevel` keeps each group's history of *residuals* (``log(peak)`` minus the static level)
and gives every job ``hist_grp_level = exp(static level + the group's recent mean residual)``: the
group's recent level carried to this job's configuration (or the static level alone, where it
errs less). In ``fit`` the static level is refitted
block by block (:data:`LEVEL_REFITS`), so a training job's level uses only the jobs before it.

Measured on the generated data (root mean square error of the cost-aware model's location against
the true log-mean, latest 10 %): 0.111 without the column, 0.097 with it; under strong drift 0.164
and 0.122.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np

from resource_prediction.features.history import MeanHistory, replay_means

# Imported here also for levels pickled before the static level had its own module (format 10.2).
from resource_prediction.features.static_level import StaticLevel

__all__ = ["COMBINE", "INTERACTION_MARGIN", "LEVEL_FIT_ROWS", "LEVEL_REFITS", "LEVELS", "STATIC",
           "JobLevel", "effective_count"]

#: Groupings of the residual history, finest first.
LEVELS: tuple[str, ...] = ("fine", "coarse", "global")
#: Shares of the training jobs (in time) after which ``fit`` refits the static level: a training
#: job's static level comes from the jobs before its block only (none before the first share).
LEVEL_REFITS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4, 0.6, 0.8)
#: The static level is fitted on at most this many jobs (evenly spaced in time).
LEVEL_FIT_ROWS = 50_000

#: Group codes of each row and the distinct keys they index, per grouping of :data:`LEVELS`.
Groups = dict[str, tuple[np.ndarray, list[Hashable]]]

#: The candidate without correction: the static level alone.
STATIC = "static"
#: Share by which the static level's forward errors with interactions must fall below those
#: without for them to be kept: on 2,000 generated jobs (sixteen seeds) smaller gains than that
#: came from noise and cost the cost-aware model (expected cost against the oracle's 1.172 without
#: a margin, 1.170 with it, 1.169 without interactions).
INTERACTION_MARGIN = 0.01
#: How a job's level uses the candidates (:class:`JobLevel`'s ``combine``).
COMBINE: tuple[str, ...] = ("choose", "average")


def effective_count(count: np.ndarray, alpha: float) -> np.ndarray:
    """Effective number of values behind an exponentially weighted mean of ``count`` values
    (weight ``alpha`` on the newest): ``(sum w) ** 2 / sum w ** 2``, at most ``(2 - alpha) / alpha``.

    Examples
    --------
    >>> effective_count(np.array([0, 1, 1000]), 0.3).round(2).tolist()
    [0.0, 1.0, 5.67]
    """
    n = np.maximum(np.asarray(count, dtype=float), 0.0)
    keep = 1.0 - float(alpha)
    if keep <= 0.0:
        return np.minimum(n, 1.0)
    total = (1.0 - keep**n) / (1.0 - keep)
    squares = (1.0 - keep ** (2.0 * n)) / (1.0 - keep**2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total**2 / squares, 0.0)


def _subset(groups: Groups, rows: np.ndarray) -> Groups:
    """The groups of ``rows``: their codes renumbered into the keys they use."""
    out = {}
    for level, (codes, keys) in groups.items():
        sub = codes[rows]
        used = np.flatnonzero(np.bincount(sub, minlength=len(keys)))
        renumber = np.zeros(len(keys), dtype=np.intp)
        renumber[used] = np.arange(used.size)
        out[level] = (renumber[sub], [keys[u] for u in used])
    return out


class JobLevel:
    """``hist_grp_level``: a job's static level plus the recent mean residual of its group.

    Three groupings keep residual histories (``log(peak)`` minus the static level): the fine
    group, the coarse group and all jobs, each falling back to the coarser ones. Besides these
    three candidates, each prior strength ``k`` of ``shrinkage`` makes one in which every grouping's
    mean counts ``n / (n + k)`` (``n``: its :func:`effective_count`) and its parent's correction
    the rest, from all jobs down to the fine group: a group of few peaks mostly keeps its parent's
    level, one of many its own. Each weight of ``memories`` repeats these candidates with a longer
    memory of the residuals. Each job takes the candidate whose levels erred least (squared log
    error) on the jobs before it: with the configuration priced by the static level, a coarse group
    of many jobs can beat a fine one of few (generated build data: 0.095 against 0.152 from the
    true log-mean), and where the groups' levels move slowly a longer memory beats a short one
    (0.060 against 0.095 with the coarse group's mean over about 19 peaks instead of 6). The
    errors that choose are counted within each group of ``choose_within`` (plus ``choice_prior``
    jobs' worth of the mean error of all jobs): one component's level may move slowly, another's
    step, and each keeps the memory and grouping that served its own jobs. The last candidate,
    :data:`STATIC`, is the static level alone: where a group's few noisy residuals tell less than
    the configuration and trend priced over all jobs (2,000 generated jobs), it errs least.

    With ``combine="average"`` a job takes, instead of the one candidate that erred least, the mean
    of all candidates weighted as in Bayesian model averaging with Gaussian errors:
    ``exp(-(E - E_min) / (2 s**2))``, where ``E`` is a candidate's errors as counted for the choice
    and ``s**2`` the mean squared error over all jobs of the candidate that erred least: over the
    training jobs (in ``fit``, over the blocks before; before any, the least errors choose). Where
    one candidate is clearly best over the group's many jobs this is the choice; where a group's
    few jobs cannot tell candidates apart, their mean errs less than either.

    Parameters
    ----------
    alpha : float
        Weight of the newest residual in the running means.
    min_history : int
        Residuals a fine group needs before its own mean is used.
    shrinkage : tuple of float
        Prior strengths ``k`` (positive, in peaks) of the shrunk candidates; empty: none. Measured
        with the cost-aware model (expected cost against the oracle's, default hyper-parameters):
        ``(1, 3)`` helps on 2,000 generated jobs (sixteen seeds, 1.26 to 1.22 times the oracle)
        and with heavy tails, but under strong drift and with new components the levels' early
        choices cost more than they gain (1.14 to 1.16, 1.106 to 1.117; seeds 0-2), so the default
        has none.
    memories : tuple of float
        EWM weights of the longer-memory candidates (``alpha`` is the first weight); empty: none.
        With ``choose_within="coarse"``, ``(0.1,)`` (about 19 peaks against 6) lowered the
        cost-aware model's expected cost against the oracle's on every generated scenario (default
        hyper-parameters, seeds 0-2): default data 1.066 against 1.094, new components 1.072 against
        1.103, workflow phases 1.209 against 1.263, heavy tails 1.055 against 1.078, strong drift
        1.137 against 1.140, 2,000 jobs (sixteen seeds) 1.225 against 1.229. But on the real traces'
        cold-start draws where the trees compete it made the model worse (iwd 87.2 against 77.2,
        methylseq 102.4 against 92.4 and 115.3 against 90.4), so only build telemetry has it by
        default (the schema's ``level_memories``; ``book/features.md``).
    choose_within : {"global", "coarse", "fine"}
        Grouping within which the candidates' errors are counted to choose each job's candidate;
        ``"global"``: one choice for all jobs. With the longer memory, the coarse group chose better
        than all jobs (2,000 jobs 1.225 against 1.247; strong drift 1.137 against 1.141) and than
        the fine group (1.249; default data 1.074), whose few jobs cannot tell candidates apart.
    choice_prior : float
        Jobs' worth of the mean error of all jobs added to a group's own errors (a group of few
        jobs keeps the overall choice).
    trend : str or None
        The static level's ``trend`` (:class:`StaticLevel`): a categorical feature whose
        categories each get a slope in time; None: no trend.
    combine : {"choose", "average"}
        ``"choose"``: each job takes the candidate that erred least; ``"average"``: the candidates'
        mean weighted by their errors (above).
    interactions : tuple of (str, str)
        The static level's ``interactions`` (:class:`StaticLevel`), kept only where they earn their
        place: in ``fit`` the static level is fitted block by block with and without them, and
        each block's jobs get them if with them it erred less (squared log error, by at least
        :data:`INTERACTION_MARGIN`) on the blocks before; later jobs if so over all blocks.
        With them, the first feature of each pair (the task type) also gets its own slope of every
        numeric feature (the static level's ``slopes``).

    Attributes
    ----------
    static_ : StaticLevel
        Fitted on every training job.
    histories_ : dict of (str, float) to MeanHistory
        Per grouping and EWM weight, the residual history.
    candidates_ : tuple of str
        The candidates: the groupings of :data:`LEVELS`, then ``"shrunk_<k>"`` per prior strength;
        then the same names followed by ``"@<weight>"`` per weight of ``memories``; last
        :data:`STATIC`.
    errors_ : ndarray of shape (n_candidates,)
        Squared errors so far of each candidate's level, over all jobs.
    choice_ : _Choice
        Per group of ``choose_within``, the candidates' squared errors so far; the jobs behind them.
    noise_ : float
        ``s**2`` of ``combine="average"``, from the training jobs.
    interactions_ : tuple of (str, str)
        The static level's interactions: ``interactions`` or none.
    interaction_errors_ : ndarray of shape (2,)
        Squared errors of the static level on the next blocks' jobs without and with
        ``interactions`` (none given: zeros).
    """

    def __init__(self, alpha: float, min_history: int = 1, shrinkage: tuple[float, ...] = (),
                 memories: tuple[float, ...] = (), choose_within: str = "global",
                 choice_prior: float = 20.0, trend: str | None = None, combine: str = "choose",
                 interactions: tuple[tuple[str, str], ...] = ()):
        self.alpha = alpha
        self.combine = combine
        self.interactions = interactions
        self.trend = trend
        self.min_history = min_history
        self.shrinkage = shrinkage
        self.memories = memories
        self.choose_within = choose_within
        self.choice_prior = choice_prior

    def fit(self, groups: Groups, ns: np.ndarray, codes: dict[str, tuple[np.ndarray, int]],
            numeric: dict[str, np.ndarray], log_peaks: np.ndarray) -> np.ndarray:
        """Fit on the training jobs; return their levels (log GB), causal.

        The static level is refitted after each share of :data:`LEVEL_REFITS` of the jobs (in
        time, ``ns``): the jobs of a block see the static level of the jobs before the block (none
        in the first block) and the residual history recomputed with it, so no training job's
        level depends on its own peak or a later one. The candidates' errors that choose are
        those each job's level made in its block (but the first, which has no static level). The
        histories kept for later jobs use the static level of every job.
        """
        n = log_peaks.size
        order = np.argsort(ns, kind="stable")
        plain = {col: c for col, (c, _) in codes.items()}
        names = (*LEVELS, *(f"shrunk_{k:g}" for k in self.shrinkage))
        self.candidates_ = (*(name if i == 0 else f"{name}@{alpha:g}"
                              for i, alpha in enumerate(self._alphas()) for name in names), STATIC)
        if self.choose_within not in LEVELS:
            raise ValueError(f"choose_within must be one of {LEVELS}, got {self.choose_within!r}")
        if self.combine not in COMBINE:
            raise ValueError(f"combine must be one of {COMBINE}, got {self.combine!r}")

        def fitted(rows: np.ndarray, interactions: tuple = ()) -> StaticLevel:
            if rows.size > LEVEL_FIT_ROWS:
                rows = rows[np.linspace(0, rows.size - 1, LEVEL_FIT_ROWS).round().astype(np.intp)]
            slopes = tuple(dict.fromkeys(first for first, _ in interactions))
            return StaticLevel(trend=self.trend, interactions=interactions, slopes=slopes).fit(
                {col: (c[rows], size) for col, (c, size) in codes.items()},
                {k: v[rows] for k, v in numeric.items()}, log_peaks[rows], ns[rows])

        def static_of(rows: np.ndarray, level: StaticLevel) -> np.ndarray:
            return level.predict({col: c[rows] for col, c in plain.items()},
                                 {k: v[rows] for k, v in numeric.items()}, rows.size, ns[rows])

        cuts = [0, *(int(round(share * n)) for share in LEVEL_REFITS), n]
        options = ((), tuple(map(tuple, self.interactions)))
        self.interaction_errors_ = np.zeros(2)
        out = np.zeros(n)
        self.choice_ = self._choice()
        for start, end in zip(cuts[:-1], cuts[1:], strict=True):
            if end <= start:
                continue
            upto = order[:end]  # the block and the jobs before it, in time order
            chosen = self._interactions_kept()  # by the blocks before this one
            compare = bool(self.interactions) and start > 0  # both options, scored on this block
            fits = {option: fitted(order[:start], option) for option in (options if compare else (chosen,))}
            for i, option in enumerate(options if compare else ()):
                error = log_peaks[order[start:end]] - static_of(order[start:end], fits[option])
                self.interaction_errors_[i] += np.sum(np.square(error[np.isfinite(error)]))
            static = static_of(upto, fits[chosen])
            value = self._corrected(_subset(groups, upto), ns[upto], static, log_peaks[upto] - static,
                                    self._histories(), self.choice_, commit=False, learn=start > 0,
                                    first=start, noise=self.choice_.noise())
            out[order[start:end]] = value[start:]
        self.interactions_ = self._interactions_kept()
        self.static_ = fitted(order, self.interactions_)
        self.histories_ = self._histories()
        static = self.static_.predict(plain, numeric, n, ns)
        self._corrected(groups, ns, static, log_peaks - static, self.histories_, self.choice_,
                        commit=True, learn=False, first=n)
        self.noise_ = self.choice_.noise()
        return out

    def __setstate__(self, state: dict) -> None:
        """Levels pickled before ``combine`` and ``interactions`` (format 10.1) choose one
        candidate and price no pairs."""
        state.setdefault("combine", "choose")
        state.setdefault("noise_", 0.0)
        state.setdefault("interactions", ())
        state.setdefault("interactions_", ())
        state.setdefault("interaction_errors_", np.zeros(2))
        self.__dict__.update(state)

    def _interactions_kept(self) -> tuple:
        """``interactions`` if with them the static level erred less so far (by
        :data:`INTERACTION_MARGIN`), else none."""
        with_them = self.interaction_errors_[1] < (1.0 - INTERACTION_MARGIN) * self.interaction_errors_[0]
        return tuple(map(tuple, self.interactions)) if with_them else ()

    def _choice(self) -> _Choice:
        return _Choice(len(self.candidates_))

    @property
    def errors_(self) -> np.ndarray:
        return self.choice_.errors.sum(axis=0)

    def _histories(self) -> dict[tuple[str, float], MeanHistory]:
        return {(level, alpha): MeanHistory(alpha) for alpha in self._alphas() for level in LEVELS}

    def transform(self, groups: Groups, ns: np.ndarray, codes: dict[str, np.ndarray],
                  numeric: dict[str, np.ndarray], log_peaks: np.ndarray | None, *,
                  commit: bool = False) -> np.ndarray:
        """Levels (log GB) of later jobs: with ``log_peaks`` a replay in time order (each job sees
        the earlier ones; ``commit`` keeps them), without them what the stored history shows."""
        static = self.static_.predict(codes, numeric, ns.size, ns)
        residuals = None if log_peaks is None else log_peaks - static
        return self._corrected(groups, ns, static, residuals, self.histories_, self.choice_,
                               commit=commit, learn=commit, noise=self.noise_)

    def _alphas(self) -> tuple[float, ...]:
        """The EWM weights of the candidates: ``alpha`` first, then ``memories``."""
        return tuple(dict.fromkeys((float(self.alpha), *(float(a) for a in self.memories))))

    def _table(self, groups: Groups, order: np.ndarray, residuals: np.ndarray | None,
               histories: dict[tuple[str, float], MeanHistory], *, commit: bool) -> np.ndarray:
        """The candidates' corrections, per EWM weight: each grouping's (falling back to the
        coarser ones), then the shrunk ones."""
        n, alphas = order.size, self._alphas()
        names = len(LEVELS) + len(self.shrinkage)
        table = np.zeros((names * len(alphas) + 1, n))  # the last row: STATIC, no correction
        correction = np.zeros((len(alphas), n))
        shrunk = np.zeros((len(alphas), len(self.shrinkage), n))
        prior = np.asarray(self.shrinkage, dtype=float)[:, None]
        for level in reversed(LEVELS):
            codes, keys = groups[level]
            if residuals is None:
                got = [histories[level, alpha].current(codes, keys) for alpha in alphas]
            else:
                got = replay_means([histories[level, alpha] for alpha in alphas], codes[order], keys,
                                   residuals[order], commit=commit, out_index=order)
            for i, (alpha, (mean, count)) in enumerate(zip(alphas, got, strict=True)):
                found = count >= (self.min_history if level == "fine" else 1)  # mean finite there
                correction[i] = np.where(found, mean, correction[i])
                table[i * names + LEVELS.index(level)] = correction[i]
                if self.shrinkage:
                    weight = effective_count(count, alpha)[None, :]
                    shrunk[i] = np.where(found, (weight * mean + prior * shrunk[i]) / (weight + prior), shrunk[i])
        for i in range(len(alphas)):
            table[i * names + len(LEVELS): (i + 1) * names] = shrunk[i]
        return table

    def _corrected(self, groups: Groups, ns: np.ndarray, static: np.ndarray,
                   residuals: np.ndarray | None, histories: dict[tuple[str, float], MeanHistory],
                   choice: _Choice, *, commit: bool, learn: bool, first: int = 0,
                   noise: float = 0.0) -> np.ndarray:
        """Static level plus each row's chosen candidate's correction. With residuals (a replay in
        time order) each row's choice also sees the errors of the rows before it; the ``first``
        rows in time only replay into the histories (their values are not computed). ``commit``
        keeps the rows in ``histories``, ``learn`` adds the computed rows' errors to ``choice``."""
        order = np.argsort(ns, kind="stable")
        table = self._table(groups, order, residuals, histories, commit=commit)
        codes, keys = groups[self.choose_within]
        value = static.copy()
        total, total_jobs = choice.errors.sum(axis=0)[:, None], choice.jobs
        if residuals is None:
            scores = choice.of(keys)[codes].T + self._prior(total, np.full(codes.size, total_jobs))
            return value + self._combined(scores, table, noise)
        tail = order[first:]
        if not tail.size:
            return value
        errors = np.square(residuals[tail] - table[:, tail])
        known = ~np.isnan(residuals[tail])
        np.copyto(errors, 0.0, where=~known)  # jobs without a peak tell nothing
        # Each row's errors so far: all jobs', and its own group's (rows sorted by group, in time).
        before = np.cumsum(errors, axis=1)
        before -= errors
        before += total
        by_group = np.argsort(codes[tail], kind="stable")
        sorted_codes = codes[tail][by_group]
        starts = np.searchsorted(sorted_codes, sorted_codes, side="left")
        grouped = errors[:, by_group]
        group_before = np.cumsum(grouped, axis=1)
        group_before -= grouped
        group_before -= group_before[:, starts]
        group_before += choice.of(keys)[sorted_codes].T
        scores = self._prior(before, np.cumsum(known) - known + total_jobs)
        scores[:, by_group] += group_before
        value[tail] += self._combined(scores, table[:, tail], noise)
        if learn:
            choice.add(keys, codes[tail][known], errors[:, known])
        return value

    def _combined(self, scores: np.ndarray, table: np.ndarray, noise: float) -> np.ndarray:
        """Per column of ``table`` (candidates by rows), the correction ``combine`` makes of the
        candidates' ``scores``; ``noise``: the best candidate's mean squared error (0: no errors
        yet, so the least ``scores`` choose)."""
        if self.combine == "choose" or noise <= 0.0:
            return table[_finest_least(scores), np.arange(table.shape[1])]
        weights = np.exp(-(scores - scores.min(axis=0)) / (2.0 * noise))
        return (weights * table).sum(axis=0) / weights.sum(axis=0)

    def _prior(self, errors: np.ndarray, jobs: np.ndarray) -> np.ndarray:
        """``choice_prior`` jobs' worth of the mean error of ``jobs`` jobs (``errors``: their sum)."""
        return errors * (float(self.choice_prior) / np.maximum(jobs, 1.0))


class _Choice:
    """Per group, each candidate's squared errors so far (new groups: 0); and the jobs with a peak
    behind them."""

    def __init__(self, n_candidates: int):
        self.index: dict[Hashable, int] = {}
        self.errors = np.zeros((0, n_candidates))
        self.jobs = 0  # with a peak, over all groups

    def noise(self) -> float:
        """Mean squared error over all jobs of the candidate that erred least (0: no jobs yet)."""
        return float(self.errors.sum(axis=0).min()) / self.jobs if self.jobs else 0.0

    def of(self, keys: list[Hashable]) -> np.ndarray:
        """Errors so far of ``keys`` (n_keys, n_candidates)."""
        rows = np.fromiter((self.index.get(k, -1) for k in keys), dtype=np.intp, count=len(keys))
        errors = np.zeros((len(keys), self.errors.shape[1]))
        errors[rows >= 0] = self.errors[rows[rows >= 0]]
        return errors

    def add(self, keys: list[Hashable], codes: np.ndarray, errors: np.ndarray) -> None:
        """Add each row's ``errors`` (n_candidates, n_rows) to its group's."""
        for key in keys:
            if key not in self.index:
                self.index[key] = len(self.index)
        rows = np.fromiter((self.index[k] for k in keys), dtype=np.intp, count=len(keys))
        grown = len(self.index) - self.errors.shape[0]
        if grown:  # new groups start at zero
            self.errors = np.vstack([self.errors, np.zeros((grown, self.errors.shape[1]))])
        self.jobs += codes.size
        for c in range(errors.shape[0]):
            self.errors[rows, c] += np.bincount(codes, weights=errors[c], minlength=len(keys))


def _finest_least(errors: np.ndarray) -> np.ndarray:
    """Per column, the finest grouping within rounding of the least error: groupings that fall
    back to the same history tie exactly but for the last bits of their running means."""
    near = errors <= errors.min(axis=0) * (1 + 1e-9) + 1e-12
    return np.argmax(near, axis=0)
