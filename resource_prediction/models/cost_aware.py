"""Cost-aware allocation: predict each job's peak distribution, allocate its cost optimum.

The business score splits into one expected cost per job, ``unit_cost * P(peak > a) +
E[(a - peak)+]`` with ``unit_cost = penalty x mean peak`` (see :mod:`resource_prediction.
allocation`): the best quantile differs from job to job. This model

1. models the location of ``log(peak)`` in one of three ways (``location``): LightGBM trees
   (relative to the group's job-adjusted level ``offset``, reading the group's recent peaks
   also as ratios to it, ``relative``) fitted with squared error or with the Huber loss, which
   an outlier pulls less, or *flat*: one ratio to the job group's
   recent maximum peak for every job, the rule of thumb of workflow users (``max seen x
   margin``) with its margin made cost-optimal per job;
2. calibrates **forward**, as the model is used: the later training rows are cut into blocks of
   time, each predicted by a location model fitted on the rows before it
   (``calibration="forward"``), so the errors include drift, new groups and the first jobs of a
   group;
3. fits the scale: a second LightGBM (or one level, for the flat kind) on the absolute forward
   residuals, cross-fitted so the standardised residuals are honest; both boosters keep the
   number of rounds whose held-out predictions erred least (``round_grid``: none, the group's
   level alone, where the trees would fit noise);
4. keeps the standardised residuals as empirical quantiles per calibration category (Mondrian
   calibration: by how much history the job's group had, by how far its recent peaks spread
   below their maximum, optionally by its predicted scale or by its task type, with the pooled
   quantiles for categories with few residuals), optionally weighted towards recent jobs;
5. scores every candidate (location kind x Mondrian feature) by the business score its
   calibrated allocations get on the later half of the forward rows, with the residual quantiles
   of the earlier half; keeps each kind's best Mondrian feature, and of the kinds the one with
   the lower median score over four blocks of time, so that one stretch does not decide; the
   trees must win by ``trees_margin`` (``location="auto"``);
6. per job, turns ``exp(location + widen x scale x residual quantiles)`` into weighted sample
   points and allocates the point minimising the expected cost
   (:func:`~resource_prediction.allocation.optimal_allocation_from_samples`);
7. guards (:func:`~resource_prediction.models.guard.guard_allocation`) where the calibration
   gives no evidence that the model beats it: a job whose group has no history gets its
   configured request, and one whose group has few peaks not less than the smaller of its
   request and 1.2 x the largest peak its group has seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from lightgbm import LGBMRegressor
from sklearn.dummy import DummyRegressor
from sklearn.model_selection import KFold
from sklearn.utils.validation import check_is_fitted

from resource_prediction.allocation import optimal_allocation_from_samples, unit_failure_cost
from resource_prediction.features.raw import UNKNOWN
from resource_prediction.metrics import DEFAULT_PENALTY, business_score
from resource_prediction.models.adapters import fit_with_categoricals, predict_fast
from resource_prediction.models.base import BasePredictor, suggest_preprocessor_params
from resource_prediction.models.calibration import (
    block_scores,
    least_squares_row,
    tail_levels,
    times_before,
    times_seen,
    weighted_quantiles,
)
from resource_prediction.models.guard import guard_allocation
from resource_prediction.schema import SCHEMAS

__all__ = [
    "CALIBRATIONS", "GUARD_FLOORS", "LOCATIONS", "RELATIVE", "SCALE_BINS", "SCALE_MONDRIAN", "SPREAD_MONDRIAN",
    "TASK_COLUMNS", "TREE_KINDS", "CostAwareRegressor", "search_space",
]

#: Rows per chunk when building the (rows x support points) matrix.
_CHUNK = 20_000
#: How the residuals are calibrated: forward blocks of time, or cross-fitting on contiguous /
#: shuffled folds (in-period errors, no drift).
CALIBRATIONS = ("forward", "kfold", "shuffled")
#: No predictive distribution reaches beyond this multiple of the largest training peak.
MAX_RATIO = 100.0
#: Location kinds: boosted trees (relative to ``offset``) fitted with squared error, or with the
#: Huber loss, or one ratio to ``flat_offset`` for every job; ``"auto"`` keeps the one whose
#: calibration scores best.
LOCATIONS = ("trees", "huber", "flat", "auto")
#: The location kinds fitted by boosted trees.
TREE_KINDS = ("trees", "huber")
#: Mondrian candidate that sorts jobs by their predicted scale (cut at its calibration quantiles
#: into :data:`SCALE_BINS` categories), not by a feature: the residuals' shape changes with the
#: spread (a two-valued peak is wide and lopsided, a steady one narrow and symmetric).
SCALE_MONDRIAN = "predicted_scale"
SCALE_BINS = 3
#: ``mondrian_index`` of :data:`SCALE_MONDRIAN` (feature positions are >= 0).
_SCALE_INDEX = -1
#: Mondrian candidate that sorts jobs by how far their group's recent peaks spread below its
#: recent maximum, ``log(spread[0] / spread[1])`` (features of ``X``, by default the largest of the
#: last 20 peaks and the mean of the last 5) cut at ``spread_edges``: a task type whose peaks
#: repeat the same value needs its maximum and a little more, one whose peaks swing needs a
#: different margin; a job without those features is pooled.
SPREAD_MONDRIAN = "recent_spread"
#: ``mondrian_index`` of :data:`SPREAD_MONDRIAN`.
_SPREAD_INDEX = -2
#: The Mondrian candidates that are not features of ``X``, by name.
_DERIVED_MONDRIAN = {SCALE_MONDRIAN: _SCALE_INDEX, SPREAD_MONDRIAN: _SPREAD_INDEX}
#: The guard's floors: ``"no_history"``, a group without peaks gets its request (and the jobs of a
#: task type unseen in fit keep the next floor); ``"few_peaks"``, a group with fewer than
#: ``guard_settle`` peaks gets at least its largest peak x the margin (capped at the request).
GUARD_FLOORS = ("no_history", "few_peaks")
#: The task-type column of each telemetry schema (a component, a workflow process, a Slurm job
#: name): Mondrian candidates of the default, each where ``X`` has it.
TASK_COLUMNS = tuple(dict.fromkeys(schema.task for schema in SCHEMAS.values()))
#: History features the trees also read as log ratios to their ``offset`` (the group's level).
RELATIVE = ("hist_grp_prev", "hist_grp_mean_5", "hist_grp_ewm", "hist_grp_max_20",
            "hist_grp_p95_20", "hist_grp_max_seen", "hist_grp_vpa", "memreq_gb", "hist_coarse_ewm")


@dataclass
class _Calibration:
    """What calibrating one location kind learnt, and its score on the rows it predicted."""

    kind: str
    offset_index: int | None
    mondrian_index: int | None
    table: np.ndarray
    counts: np.ndarray
    floor: float
    z: np.ndarray
    rounds: tuple[int, int] = (0, 0)
    round_errors: dict | None = None
    score: float = np.inf
    blocks: np.ndarray | None = None
    scale_model: object = None
    rows: np.ndarray | None = None
    alloc: np.ndarray | None = None
    edges: np.ndarray | None = None

    @property
    def block_score(self) -> float:
        """Median of the business scores over the blocks of time."""
        return float(np.median(self.blocks))


class CostAwareRegressor(BasePredictor):
    """Per-job cost-optimal allocation from a forward-calibrated model of ``log(peak)``.

    Parameters
    ----------
    penalty : float
        The business score's penalty (price of a failure in units of the mean peak).
    n_estimators, learning_rate, num_leaves, min_child_samples :
        The location booster (LightGBM on ``log(peak) - log(offset)``).
    scale_n_estimators, scale_num_leaves, scale_min_child_samples :
        The scale booster (LightGBM on absolute residuals).
    location : {"auto", "trees", "huber", "flat"}
        ``"trees"``: LightGBM location and scale models, relative to ``offset``, the location
        fitted with squared error; ``"huber"``: the same with the Huber loss (``huber_delta``);
        ``"flat"``: one ratio to ``flat_offset`` (the group's recent maximum) and one scale for
        every job, the rule of thumb of workflow users made cost-optimal; ``"auto"``: all three
        are calibrated, the trees' two losses compete on their median block score, and the flat
        location is kept unless the better trees' score is clearly lower (``trees_margin``).
        A rare outlier pulls squared-error leaves towards it; the Huber loss counts errors beyond
        its threshold linearly. Always fitted, it lowered the expected cost against the oracle's
        on most generated data but raised it where peaks take two values (workflow phases, seeds
        0-2: 1.198 to 1.233); chosen per data set, it kept workflow phases at 1.198 and lowered
        heavy tails from 1.049 to 1.041 and strong drift from 1.107 to 1.098
        (``book/allocation.md``).
    huber_delta : float
        The Huber loss's threshold, in median absolute deviations of the trees' target (the log
        ratio of the peak to ``offset``): errors beyond it count linearly.
    trees_margin : float
        With ``location="auto"``, the trees replace the flat location only when their median
        block score is below ``1 - trees_margin`` times the flat location's: the flat location is
        the rule users run today, and a near tie on a small trace is no evidence (the iwd workflow
        trace with a third of its task types new: trees 100.7 against flat 102.8 in calibration,
        164.4 against 62.7 on the next tasks). On the eager trace with a third of its processes
        given no request, the Huber trees led by 9.4 % (41.6 against 45.9) and scored 90.7 on the
        next tasks, the flat location 56.5: hence 10 % rather than 5 %, which changed no other of
        103 data sets (on the generated data the trees lead by 21 % or more). The trees must also
        score lower on more than half of the blocks: on another draw of that trace they led the
        median by 15 % (87.7 against 102.8) but lost the two latest blocks, and scored 102.1 on
        the next tasks, where the flat location scored 77.2.
    offset : str or None
        Feature (GB) whose log the trees' location is relative to; None fits ``log(peak)``.
        Ignored when ``X`` has no such column (arrays). The default, the group's job-adjusted
        recent level, lets the trees follow memory that grows beyond anything in training (trees
        alone cannot predict beyond the peaks they were fitted on): under strong drift (three
        seeds) 39.9 / 61.3 / 72.6 against 61.2 / 62.3 / 74.2 without it; on the other scenarios
        within 3.2 % either way (little data, whose 200 scored jobs are noisy: 1.38 against 1.41
        times the oracle over ten seeds).
    round_grid : int
        The location trees keep the number of boosting rounds, of ``0, n/round_grid, ...,
        n`` (``n = n_estimators``; beyond it with ``extend_rounds``), whose forward predictions had
        the least squared error; the scale trees likewise on their cross-fitted folds (of
        ``scale_n_estimators``). 0 keeps every round. Zero rounds is the group's level times one
        ratio. On 2,000 jobs the trees fit noise: over sixteen seeds of little data the
        allocations scored 1.28 times the oracle
        against 1.42 with every round (zero or ten rounds kept); on the other scenarios (seeds
        0-2) 1.10-1.16 against the same, and on the real traces unchanged.
    extend_rounds : int
        Where the forward predictions were still best after the last round, the location trees
        are fitted again with twice the rounds (steps of the same size), and so on up to
        ``extend_rounds x n_estimators``; 1: never. Effects that differ by component need more
        trees: on the ``interactions`` scenario (seeds 0-2) the cost-aware model's expected cost
        fell from 1.164 to 1.139 times the oracle's with 4; wherever fewer rounds than
        ``n_estimators`` were best (the other scenarios, the real traces) nothing changes.
    relative : tuple of str
        Features (GB) the trees also read as ``log(feature / offset)``: where the group's recent
        peaks, its largest and the request stand against its level. Trees split one feature at
        a time, so a ratio they would have to build from two splits is given to them. Measured
        (seeds 0-2, against the offset alone): better on 13 of 15 scenario data sets other
        than little data and worse by 0.2 on the other two (workflow phases 108.5 / 103.9 /
        96.5 against 110.5 / 129.4 / 97.4), and on the real traces' cold-start draw where the
        trees are chosen (91.3 against 118.2); on little data (2,000 jobs, ten seeds) 1.42
        against 1.38 times the oracle.
    flat_offset : str or None
        The flat location's feature (GB).
    calibration : {"forward", "kfold", "shuffled"}
        Where the residuals come from. ``"forward"``: the rows after the first ``first_block``
        share are cut into ``n_blocks`` blocks of time, each predicted by a model of all rows
        before it (the errors of deployment, drift included). ``"kfold"`` / ``"shuffled"``:
        cross-fitting on ``n_blocks`` contiguous or shuffled folds.
    n_blocks : int
        Forward blocks (or folds).
    first_block : float
        Share of the earliest rows that only trains (forward calibration).
    mondrian : str, None or tuple of them
        Feature whose value sorts jobs into calibration categories, each with its own residual
        quantiles (Mondrian calibration): a categorical feature by value (the task type), a
        numeric one cut at ``mondrian_edges`` (the group's history count); :data:`SCALE_MONDRIAN`
        cuts the predicted scale at its calibration terciles, :data:`SPREAD_MONDRIAN` the spread
        of the group's recent peaks at ``spread_edges``; None pools every residual. A tuple
        names candidates: the one with the best calibration score is kept. The default's are the
        history count, the pooled quantiles, the task type (:data:`TASK_COLUMNS`) and the
        recent spread: a task type
        whose peaks are two-valued has its own residual shape, which a pooled shape standardised
        by the scale cannot give (where the large mode is rare it sits far out, where it is common
        near). A type's own quantiles take only the residuals of jobs whose forward model had
        been fitted on at least ``min_calibration`` jobs of the type: a type's first jobs,
        predicted from its peers, err as the deployed model no longer does (they stay in the
        pooled quantiles). A type that ran too late for that, with ``min_calibration`` training
        jobs after its first ``min_calibration``, takes the final model's residuals on those
        (``fitted_categories_``): on ``workflow_phases`` (seeds 0-2) 1.105 / 1.176 / 1.166 times
        the oracle's expected cost against 1.115 / 1.259 / 1.220 with the pooled quantiles, the
        other scenarios and the real traces unchanged. Measured against the default without the
        task type (seeds 0-2):
        workflow phases 93.9 / 101.0 / 85.4 against 107.9 / 108.0 / 96.2 (with the cold-start
        residuals in the type's quantiles 97.7 / 108.2 / 91.0), heavy tails 1.10 against 1.11
        times the oracle, little data (sixteen seeds) 1.268 against 1.278, the real traces and
        their cold-start draws unchanged. The predicted scale is not a default candidate: it
        scored 105.8 against 110.3
        on ``workflow_phases`` (wide jobs there have two-valued peaks, narrow ones not), but on a
        small real trace it won the calibration by chance and failed 28 % of the next tasks.
    mondrian_edges : tuple of float
        Category edges: ``(1, 3, 10)`` makes ``< 1``, ``1-2``, ``3-9``, ``>= 10``.
    spread : tuple of str
        The two features (GB) whose log ratio is the :data:`SPREAD_MONDRIAN` candidate's value.
    spread_edges : tuple of float
        Its category edges: ``(0.05, 0.5)`` makes peaks that repeat (the recent maximum within 5 %
        of the recent mean), peaks that vary and peaks that swing (the maximum above 1.65 times
        the mean). Measured against the default without the candidate (default hyper-parameters,
        latest 10 %, replayed): on 21 real-trace data sets better on 4 and worse on 2 (by 2.0 and
        0.1), summing 1,552.0 against 1,572.5; on methylseq with a third of its task types new
        78.5 against 92.9 (``max_seen``: 82.0); the generated scenarios' mean expected cost
        within 0.003 times the oracle's.
    min_calibration : int
        Categories with fewer residuals use the pooled quantiles.
    recency : float
        Weight of the calibration residuals grows towards the latest: the oldest weighs
        ``exp(-recency)`` times the newest (0: uniform).
    n_support : int
        Sample points per job's predictive distribution.
    widen : float
        Multiplier of the predicted scale (>1 widens the distribution).
    guard : {"request", "max"} or None
        The do-no-harm guard (:func:`~resource_prediction.models.guard.guard_allocation`) for jobs
        whose group has seen fewer than ``guard_min_history`` peaks (the ``history`` feature):
        ``"request"`` allocates the configured request, ``"max"`` at least the request capped at
        the peers' recent maximum (``peers``); None disables it. Jobs whose group has seen fewer
        than ``guard_settle`` peaks, and every job of a task type unseen in ``fit``, get at least
        the smaller of their request and their group's largest peak (``seen``) times
        ``guard_margin``. It stays active unless the calibration
        shows the model cheaper than the guard on at least ``guard_evidence`` jobs with so little
        history; the request floor of a group without peaks, also on ``guard_evidence`` jobs
        without any (``guard_floors_``), and so must the floor of a task type unseen in ``fit``.
        Measured on an eager draw with a new task type whose five tasks ran at 33 GB: 58.2
        against 69.8 when the jobs with a few peaks also decided for those without
        (``max_seen``: 57.0); twenty other real-trace sets unchanged.
        Data without a configured request (the ``request`` feature absent) keep the guard, its
        floors the peers' and the group's own peaks: on the benchmark's six cold-start draws of
        the three traces with every request removed, 52.2 / 60.3 / 56.1 / 77.1 / 82.7 / 85.7
        against 76.2 / 59.7 / 56.1 / 78.8 / 85.6 / 123.7 with no guard (``max_seen``: 61.3 /
        61.2 / 90.1 / 89.9 / 84.5 / 75.4).
    guard_min_history : int
        History (peaks of the job's group) below which the request is the floor.
    guard_evidence : int
        Jobs with little history the calibration must hold before the model may overrule the
        guard.
    guard_settle : int
        History below which the group's largest peak so far (capped at the request) is the floor.
    guard_margin : float
        Multiplier of that largest peak: 1.2, as the ``max_seen`` baseline (what workflow users
        run today).
    guard_cap : bool
        While the guard holds, the jobs of a task type unseen in ``fit`` whose group has seen at
        least ``guard_settle`` peaks get at most that floor too (so exactly it): the model's
        residual shape for them comes from other types, their own peaks are the better evidence.
        On iwd scored on its latest 40 %, half of those tasks were of one type never run in
        training, with peaks of 0.003 and 0.15 GB; the pooled shape allocated 1.31 times its
        recent maximum where ``max_seen`` allocates 1.2 times and failed as few: 85.4 against
        ``max_seen``'s 78.4, with the cap 77.3. On 31 real-trace sets (the three traces, their
        cold-start draws and their latest 20-40 %) better on 6 and worse on none, summing
        2,170.0 against 2,182.5; capped from a type's first peak instead, worse on 6 (by up to
        9.0). The generated scenarios are unchanged.
    history : str or None
        Feature holding the number of peaks the job's group has seen.
    request : str or None
        Feature holding the configured request (GB).
    peers : str or None
        Feature holding the recent maximum peak of the nearest group with history (GB): the
        preprocessor's ``hist_grp_max_20`` falls back to the coarse group, then all jobs.
    seen : str or None
        Feature holding the largest peak the job's group has seen (GB).
    random_state : int
    n_jobs : int

    Attributes
    ----------
    location_model_, scale_model_ : lightgbm.LGBMRegressor
    residual_quantiles_ : ndarray of shape (n_categories, n_support)
        Quantiles of the standardised residuals at ``levels_``, per calibration category.
    calibration_counts_ : ndarray of shape (n_categories,)
        Residuals behind each category (a category below ``min_calibration`` uses the pooled row).
        A task type's count only holds jobs predicted by a forward model that had been fitted on
        at least ``min_calibration`` jobs of that type.
    fitted_categories_ : ndarray of int
        Categories (task types) whose quantiles come from the final model's residuals on their
        own training jobs (after their first ``min_calibration``): types that ran too late in
        training for the calibration to hold their errors.
    levels_, weights_ : ndarray of shape (n_support,)
    scale_floor_ : float
        Smallest scale predicted.
    guard_floors_ : dict of str to bool
        Per floor of :data:`GUARD_FLOORS`, whether it holds (see ``guard``).
    guard_active_ : bool
        Whether any floor holds.
    guard_evidence_ : dict
        Per floor whose calibration jobs were enough to decide (``"few_peaks"``: every job with
        fewer than ``guard_settle`` peaks; ``"no_history"``: those without any): their number,
        the model's and the guard's cost on them.
    log_cap_ : float
        ``log`` of :data:`MAX_RATIO` x the largest training peak: no sample point lies above it.
    location_kind_ : str
        The location kind kept (``"trees"``, ``"huber"`` or ``"flat"``).
    n_rounds_ : tuple of int
        Boosting rounds of the location and the scale trees kept (``round_grid``).
    round_errors_ : dict
        Mean squared forward error of the location per number of rounds.
    calibration_scores_ : dict
        Business score of each ``(location kind, Mondrian feature)`` candidate on the later half
        of the rows its calibration predicted, with the earlier half's residual quantiles: it
        chooses the Mondrian feature of each location kind.
    location_scores_ : dict
        Per location kind, its chosen candidate's median business score over
        :data:`~resource_prediction.models.calibration.SCORE_BLOCKS` consecutive blocks of those
        rows: it chooses the kind.
    location_block_scores_ : dict
        Per location kind, its chosen candidate's business score on each of those blocks (the
        trees must score lower than the flat location on more than half of them).
    mondrian_ : str or None
        The Mondrian candidate kept (as ``mondrian`` names it; None: pooled).
    scale_edges_ : ndarray
        Predicted scales that cut the :data:`SCALE_MONDRIAN` categories.
    offset_index_, mondrian_index_, history_index_ : int or None
        Feature positions of those features (None when absent; ``mondrian_index_`` is -1 for
        :data:`SCALE_MONDRIAN`, -2 for :data:`SPREAD_MONDRIAN`).
    request_index_, peers_index_, seen_index_, trees_offset_index_, task_index_ : int or None
        Feature positions of those features (None when absent; ``task_index_``: the first of
        :data:`TASK_COLUMNS`).
    unknown_task_ : int or None
        Code of a task type unseen in ``fit`` (the preprocessor's ``unknown``): the guard keeps
        such jobs at the floor of a group's first peaks.
    relative_index_ : ndarray of int
        Positions of the ``relative`` features present.
    """

    def __init__(
        self,
        penalty: float = DEFAULT_PENALTY,
        n_estimators: int = 100,
        learning_rate: float = 0.15,
        num_leaves: int = 15,
        min_child_samples: int = 20,
        scale_n_estimators: int = 50,
        scale_num_leaves: int = 15,
        scale_min_child_samples: int = 50,
        location: str = "auto",
        trees_margin: float = 0.10,
        huber_delta: float = 1.0,
        offset: str | None = "hist_grp_level",
        relative: tuple[str, ...] = RELATIVE,
        round_grid: int = 10,
        extend_rounds: int = 4,
        flat_offset: str | None = "hist_grp_max_20",
        calibration: str = "forward",
        n_blocks: int = 4,
        first_block: float = 0.4,
        mondrian: str | tuple | None = ("hist_grp_count", None, *TASK_COLUMNS, SPREAD_MONDRIAN),
        mondrian_edges: tuple[float, ...] = (1, 3, 10),
        spread: tuple[str, str] = ("hist_grp_max_20", "hist_grp_mean_5"),
        spread_edges: tuple[float, ...] = (0.05, 0.5),
        min_calibration: int = 50,
        recency: float = 0.0,
        n_support: int = 128,
        widen: float = 1.0,
        guard: str | None = "request",
        guard_min_history: int = 1,
        guard_evidence: int = 50,
        guard_settle: int = 20,
        guard_margin: float = 1.2,
        guard_cap: bool = True,
        seen: str | None = "hist_grp_max_seen",
        history: str | None = "hist_grp_count",
        request: str | None = "memreq_gb",
        peers: str | None = "hist_grp_max_20",
        random_state: int = 0,
        n_jobs: int = 1,
    ):
        self.penalty = penalty
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.scale_n_estimators = scale_n_estimators
        self.scale_num_leaves = scale_num_leaves
        self.scale_min_child_samples = scale_min_child_samples
        self.location = location
        self.trees_margin = trees_margin
        self.huber_delta = huber_delta
        self.offset = offset
        self.relative = relative
        self.round_grid = round_grid
        self.extend_rounds = extend_rounds
        self.flat_offset = flat_offset
        self.calibration = calibration
        self.n_blocks = n_blocks
        self.first_block = first_block
        self.mondrian = mondrian
        self.mondrian_edges = mondrian_edges
        self.spread = spread
        self.spread_edges = spread_edges
        self.min_calibration = min_calibration
        self.recency = recency
        self.n_support = n_support
        self.widen = widen
        self.guard = guard
        self.guard_min_history = guard_min_history
        self.guard_evidence = guard_evidence
        self.guard_settle = guard_settle
        self.guard_margin = guard_margin
        self.guard_cap = guard_cap
        self.seen = seen
        self.history = history
        self.request = request
        self.peers = peers
        self.random_state = random_state
        self.n_jobs = n_jobs

    def __setstate__(self, state: dict) -> None:
        """Models pickled before ``huber_delta`` and ``extend_rounds`` (format 10.0) never chose
        the Huber loss nor grew their trees beyond ``n_estimators``; those before ``guard_cap``
        (format 10.2) never capped a new task type's jobs; those before ``fitted_categories_``
        (format 10.5) left a late task type the pooled quantiles."""
        state.setdefault("huber_delta", 1.0)
        state.setdefault("extend_rounds", 1)
        state.setdefault("guard_cap", False)
        state.setdefault("fitted_categories_", np.empty(0, dtype=np.intp))
        self.__dict__.update(state)

    # ------------------------------------------------------------------ boosters
    def _booster(self, n_estimators: int, num_leaves: int, min_child_samples: int, n_rows: int,
                 huber: float | None = None):
        """A LightGBM regressor (squared error, or the Huber loss with threshold ``huber``)."""
        if int(n_estimators) == 0:  # no trees: one level for every job
            return DummyRegressor(strategy="median")
        loss = {} if huber is None else {"objective": "huber", "alpha": huber}
        return LGBMRegressor(
            **loss,
            n_estimators=n_estimators,
            learning_rate=self.learning_rate,
            num_leaves=num_leaves,
            # Tiny training sets (estimator checks, small traces) still get leaves.
            min_child_samples=max(1, min(min_child_samples, n_rows // 4)),
            random_state=self.random_state,
            n_jobs=self.n_jobs,
            verbose=-1,
        )

    def _makers(self, kind: str, rounds: int | None = None, scale_rounds: int | None = None):
        """Location and scale model factories ``f(target)`` of a location kind, with ``rounds``
        and ``scale_rounds`` boosting rounds (``n_estimators``, ``scale_n_estimators`` by
        default)."""
        if kind == "flat":
            return (lambda t: self._booster(0, 0, 0, t.size)), (lambda t: self._booster(0, 0, 0, t.size))
        rounds = self.n_estimators if rounds is None else rounds
        scale_rounds = self.scale_n_estimators if scale_rounds is None else scale_rounds
        return (
            lambda t: self._booster(rounds, self.num_leaves, self.min_child_samples, t.size,
                                    self._huber_threshold(t) if kind == "huber" else None),
            lambda t: self._booster(scale_rounds, self.scale_num_leaves, self.scale_min_child_samples, t.size),
        )

    def _huber_threshold(self, target: np.ndarray) -> float:
        """The Huber loss's threshold: ``huber_delta`` median absolute deviations of ``target``."""
        deviation = float(np.median(np.abs(target - np.median(target)))) if target.size else 0.0
        return max(float(self.huber_delta) * deviation, 1e-6)

    def _round_stops(self, kind: str, n_rounds: int, first: int | None = None) -> np.ndarray:
        """Numbers of boosting rounds (of at most ``n_rounds``) whose held-out predictions are
        compared (``round_grid``): ``round_grid`` steps up to ``first`` (default ``n_rounds``),
        then steps of the same size up to ``n_rounds``."""
        n = 0 if kind not in TREE_KINDS else int(n_rounds)
        if n == 0 or int(self.round_grid) <= 0:
            return np.array([n])
        first = n if first is None else min(n, int(first))
        step = max(1, first // int(self.round_grid))
        grid = np.linspace(0, first, int(self.round_grid) + 1).round().astype(int)
        return np.unique(np.r_[grid, np.arange(first, n + 1, step), n])

    def _staged(self, model, Xa: np.ndarray, stops: np.ndarray, base: float) -> np.ndarray:
        """Predictions of ``model`` after each number of rounds in ``stops`` (0 rounds: ``base``,
        the training median), shape ``(len(stops), n_rows)``: one pass over the trees."""
        booster = getattr(model, "booster_", None)
        if booster is None:
            return predict_fast(model, Xa)[None, :]
        out = np.empty((stops.size, Xa.shape[0]))
        total, done = np.zeros(Xa.shape[0]), 0
        threads = int(self.n_jobs) if self.n_jobs and self.n_jobs > 0 else 0
        for i, k in enumerate(stops):
            if k > done:
                total += booster.predict(Xa, start_iteration=done, num_iteration=int(k) - done,
                                         num_threads=threads)
                done = int(k)
            out[i] = total if k else base
        return out

    def _fit_model(self, make, Xa: np.ndarray, target: np.ndarray):
        extra = Xa.shape[1] - self.categorical_mask_.size  # columns added by _augment
        mask = np.r_[self.categorical_mask_, np.zeros(extra, dtype=bool)]
        counts = np.r_[self._category_counts(), np.zeros(extra, dtype=np.int64)]
        return fit_with_categoricals(make(target), Xa, target, mask, counts)

    def _augment(self, Xa: np.ndarray, kind: str) -> np.ndarray:
        """The features of a location ``kind``: for the trees, ``X`` and the log ratio of each
        ``relative`` feature to the offset (positions found once, in ``fit``)."""
        if kind not in TREE_KINDS or self.trees_offset_index_ is None or not self.relative_index_.size:
            return Xa
        values = Xa[:, self.relative_index_]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = np.log(np.where(values > 0, values, np.nan))
        return np.column_stack([Xa, ratios - self._log_offset(Xa, self.trees_offset_index_)[:, None]])

    # ------------------------------------------------------------------ features used
    def _feature_index(self, name: str | None) -> int | None:
        names = list(getattr(self, "feature_names_in_", []))
        return names.index(name) if name is not None and name in names else None

    def _log_offset(self, Xa: np.ndarray, index: int | None) -> np.ndarray:
        """``log`` of the offset feature at ``index`` (0 without one; the training median peak's
        log where unusable)."""
        if index is None:
            return np.zeros(Xa.shape[0])
        values = Xa[:, index]
        usable = np.isfinite(values) & (values > 0)
        return np.where(usable, np.log(np.where(usable, values, 1.0)), self.log_level_)

    def _categories(self, Xa: np.ndarray, index: int | None, scale: np.ndarray | None = None,
                    edges: np.ndarray | None = None) -> np.ndarray:
        """Calibration category of each row by the feature at ``index`` (0: the pooled row).

        A categorical feature gives one category per value seen in ``fit`` (unseen values are
        pooled); a numeric one is cut at ``mondrian_edges``; :data:`SCALE_MONDRIAN` cuts the
        rows' predicted ``scale`` at ``edges``; :data:`SPREAD_MONDRIAN` the log ratio of the
        ``spread`` features at ``spread_edges`` (rows without it are pooled).
        """
        if index is None:
            return np.zeros(Xa.shape[0], dtype=np.intp)
        if index == _SCALE_INDEX:
            return 1 + np.searchsorted(edges, scale, side="right")
        if index == _SPREAD_INDEX:
            top, base = (Xa[:, self._feature_index(name)] for name in self.spread)
            with np.errstate(divide="ignore", invalid="ignore"):
                spread = np.log(top / base)
            cut = 1 + np.searchsorted(np.asarray(self.spread_edges, dtype=float), spread, side="right")
            return np.where(np.isfinite(spread), cut, 0).astype(np.intp)
        values = Xa[:, index]
        if self.categorical_mask_[index]:
            return np.where(np.isnan(values), 0, np.nan_to_num(values) + 1).astype(np.intp)
        edges = np.asarray(self.mondrian_edges, dtype=float)
        return 1 + np.searchsorted(edges, np.nan_to_num(values, nan=0.0), side="right")

    def _is_categorical(self, index: int | None) -> bool:
        """Whether the Mondrian candidate at ``index`` is a categorical feature (a task type)."""
        return index is not None and index >= 0 and bool(self.categorical_mask_[index])

    def _n_categories(self, index: int | None) -> int:
        if index is None:
            return 1
        if index == _SCALE_INDEX:
            return 1 + SCALE_BINS
        if index == _SPREAD_INDEX:
            return 2 + len(self.spread_edges)
        if self.categorical_mask_[index]:
            return 1 + len(self.categories_[index])
        return 2 + len(self.mondrian_edges)

    # ------------------------------------------------------------------ fitting
    def _check_params(self) -> None:
        if self.widen <= 0:
            raise ValueError(f"widen must be positive, got {self.widen}")
        if len(self.spread) != 2:
            raise ValueError(f"spread must name two features, got {self.spread!r}")
        if np.any(np.diff(np.asarray(self.spread_edges, dtype=float)) <= 0):
            raise ValueError(f"spread_edges must increase, got {self.spread_edges!r}")
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {CALIBRATIONS}, got {self.calibration!r}")
        if int(self.n_blocks) < 2:
            raise ValueError(f"n_blocks must be at least 2, got {self.n_blocks}")
        if not 0.0 < self.first_block < 1.0:
            raise ValueError(f"first_block must be in (0, 1), got {self.first_block}")
        if self.location not in LOCATIONS:
            raise ValueError(f"location must be one of {LOCATIONS}, got {self.location!r}")
        if self.recency < 0:
            raise ValueError(f"recency must be >= 0, got {self.recency}")
        if self.guard_margin <= 0:
            raise ValueError(f"guard_margin must be positive, got {self.guard_margin}")
        if int(self.extend_rounds) < 1:
            raise ValueError(f"extend_rounds must be at least 1, got {self.extend_rounds}")
        if not self.huber_delta > 0:
            raise ValueError(f"huber_delta must be positive, got {self.huber_delta}")
        if not 0.0 <= self.trees_margin < 1.0:
            raise ValueError(f"trees_margin must be in [0, 1), got {self.trees_margin}")

    def _splits(self, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(train rows, predicted rows)`` pairs of the calibration scheme."""
        blocks = min(int(self.n_blocks), n)
        if self.calibration != "forward":
            shuffle = self.calibration == "shuffled"
            kfold = KFold(blocks, shuffle=shuffle, random_state=self.random_state if shuffle else None)
            return list(kfold.split(np.empty((n, 1))))
        start = min(max(2, int(round(self.first_block * n))), n - 1)
        cuts = np.unique(np.linspace(start, n, blocks + 1).round().astype(int))
        return [(np.arange(a), np.arange(a, b)) for a, b in zip(cuts[:-1], cuts[1:], strict=False)]

    def _forward_location(self, Xa: np.ndarray, z: np.ndarray, kind: str, rounds: int):
        """The location's predictions of each calibration block after each of its round stops
        (trees of ``rounds`` rounds fitted on the rows before it)."""
        make_location = self._makers(kind, rounds)[0]
        stops, pieces = self._round_stops(kind, rounds, first=self.n_estimators), []
        for train, test in self._splits(z.size):
            model = self._fit_model(make_location, Xa[train], z[train])
            pieces.append((test, self._staged(model, Xa[test], stops, float(np.median(z[train])))))
        return stops, pieces

    def _calibrate(self, Xa: np.ndarray, y: np.ndarray, kind: str) -> list[_Calibration]:
        """Forward (or cross-fitted) calibration of one location kind, one candidate per
        Mondrian feature, each with its business score on the rows the calibration predicted."""
        Xa = self._augment(Xa, kind)
        offset_index = self._feature_index(self.flat_offset if kind == "flat" else self.offset)
        log_offset = self._log_offset(Xa, offset_index)
        z = np.log(y) - log_offset
        rounds, limit = int(self.n_estimators), int(self.n_estimators) * int(self.extend_rounds)
        while True:
            stops, pieces = self._forward_location(Xa, z, kind, rounds)
            rows = np.concatenate([p[0] for p in pieces])
            staged = np.concatenate([p[1] for p in pieces], axis=1)
            # The trees stop where their forward predictions were best: on 2,000 jobs a few
            # rounds (or none: the group's level) beat a hundred that fit the noise; where the
            # last rounds still helped, the trees are grown twice as far (up to the limit).
            best_stop, errors = least_squares_row(staged, z[rows])
            if best_stop < stops.size - 1 or stops.size == 1 or rounds >= limit:  # size 1: no grid
                break
            rounds = min(2 * rounds, limit)
        # Per categorical Mondrian feature, how often the fitted rows had each predicted row's category.
        splits = self._splits(z.size)
        seen_counts = {i: [times_seen(Xa[train, i], Xa[test, i]) for train, test in splits]
                       for i in self._mondrian_indices() if self._is_categorical(i)}
        mu = staged[best_stop].copy()
        residual = z[rows] - mu
        mu += log_offset[rows]
        abs_res = np.abs(residual)
        floor = max(float(np.quantile(abs_res, 0.05)), 1e-6)
        scale_stops = self._round_stops(kind, self.scale_n_estimators)
        staged = np.empty((scale_stops.size, rows.size))
        make_scale = self._makers(kind)[1]
        for train, test in KFold(min(3, rows.size)).split(rows):
            model = self._fit_model(make_scale, Xa[rows[train]], abs_res[train])
            staged[:, test] = self._staged(model, Xa[rows[test]], scale_stops,
                                           float(np.median(abs_res[train])))
        best_scale, _ = least_squares_row(staged, abs_res)
        scale_rounds = int(scale_stops[best_scale])
        scale = np.maximum(staged[best_scale], floor)
        standardised, order = residual / scale, rows.astype(float)
        scale_model = self._fit_model(self._makers(kind, scale_rounds=scale_rounds)[1], Xa[rows], abs_res)
        # Each candidate is scored forward once more: the later half of the rows (in time) is
        # allocated with the quantiles of the earlier half, so a finer Mondrian split earns no
        # in-sample advantage and a split whose categories drift (workflow phases) is caught.
        later = np.argsort(np.argsort(order, kind="stable"), kind="stable") >= rows.size // 2
        earlier = ~later
        out = []
        edges = np.quantile(scale, np.arange(1, SCALE_BINS) / SCALE_BINS)
        for index in self._mondrian_indices():
            cats = self._categories(Xa[rows], index, scale, edges)
            # A task type's own quantiles take only the errors of models that knew it: a type's
            # first jobs, predicted from its peers' level, err as the deployed model (which has
            # seen the type) no longer does. Their residuals stay in the pooled quantiles.
            own = cats if index not in seen_counts else np.where(
                np.concatenate(seen_counts[index]) >= self.min_calibration, cats, 0)
            table, _ = self._quantile_table(standardised[earlier], own[earlier], order[earlier], index)
            alloc = self._allocate(mu[later], scale[later] * self.widen, table[cats[later]])
            table, counts = self._quantile_table(standardised, own, order, index)
            score = business_score(alloc, y[rows[later]], penalty=self.penalty)
            blocks = block_scores(alloc, y[rows[later]], rows[later], self.penalty)
            out.append(_Calibration(kind, offset_index, index, table, counts, floor, z,
                                    (int(stops[best_stop]), scale_rounds),
                                    dict(zip(stops.tolist(), errors.tolist(), strict=True)),
                                    score, blocks, scale_model, rows[later], alloc, edges))
        return out

    def _mondrian_indices(self) -> list[int | None]:
        """Feature positions of the Mondrian candidates present in ``X`` (None: pooled)."""
        names = self.mondrian if isinstance(self.mondrian, tuple | list) else (self.mondrian,)
        found = [self._derived_index(n) if n in _DERIVED_MONDRIAN else self._feature_index(n)
                 for n in names]
        return list(dict.fromkeys(i for i, n in zip(found, names, strict=True)
                                  if i is not None or n is None)) or [None]

    def _derived_index(self, name: str) -> int | None:
        """``mondrian_index`` of a candidate of :data:`_DERIVED_MONDRIAN` (None: its features are
        missing from ``X``)."""
        if name == SPREAD_MONDRIAN and any(self._feature_index(f) is None for f in self.spread):
            return None
        return _DERIVED_MONDRIAN[name]

    @staticmethod
    def _mondrian_name(index: int | None, names: list) -> str | int | None:
        """The Mondrian candidate at ``index`` as ``mondrian`` names it."""
        if index is None or index < 0:
            return None if index is None else next(k for k, v in _DERIVED_MONDRIAN.items() if v == index)
        return str(names[index]) if names else index

    def _quantile_table(self, standardised, categories, order, index) -> tuple[np.ndarray, np.ndarray]:
        """Pooled (row 0) and per-category residual quantiles (recency-weighted by ``order``) of
        the Mondrian feature at ``index``."""
        weights = None
        if self.recency > 0 and standardised.size > 1:
            age = 1.0 - order / max(order.max(), 1)
            weights = np.exp(-self.recency * age)
        n_cat = self._n_categories(index)
        pooled = weighted_quantiles(standardised, self.levels_, weights)
        table = np.tile(pooled, (n_cat, 1))
        counts = np.bincount(categories, minlength=n_cat)[:n_cat]
        for c in np.flatnonzero(counts[1:] >= max(int(self.min_calibration), 1)) + 1:
            rows = categories == c
            table[c] = weighted_quantiles(
                standardised[rows], self.levels_, None if weights is None else weights[rows]
            )
        return table, counts

    def fit(self, X, y):
        """Calibrate each candidate location kind, keep the best, fit its final location model."""
        Xa, y = self._validate_fit(X, y)
        self._check_params()
        self.request_index_ = self._feature_index(self.request)
        self.history_index_ = self._feature_index(self.history)
        self.peers_index_ = self._feature_index(self.peers)
        self.seen_index_ = self._feature_index(self.seen)
        self.trees_offset_index_ = self._feature_index(self.offset)
        self.task_index_ = next((i for i in map(self._feature_index, TASK_COLUMNS)
                                 if i is not None and self.categorical_mask_[i]), None)
        vocabulary = [] if self.task_index_ is None else list(self.categories_[self.task_index_])
        self.unknown_task_ = vocabulary.index(UNKNOWN) if UNKNOWN in vocabulary else None
        self.relative_index_ = np.array(
            [i for i in map(self._feature_index, self.relative) if i is not None], dtype=np.intp)
        self.log_level_ = float(np.median(np.log(y)))
        self.log_cap_ = float(np.log(MAX_RATIO * y.max()))
        self.levels_, self.weights_ = tail_levels(int(self.n_support))
        kinds = LOCATIONS[:-1] if self.location == "auto" else (self.location,)
        calibrations = [c for kind in kinds for c in self._calibrate(Xa, y, kind)]
        names = list(getattr(self, "feature_names_in_", []))
        self.calibration_scores_ = {(c.kind, self._mondrian_name(c.mondrian_index, names)): c.score
                                    for c in calibrations}
        # Within a kind the candidates share the location and differ in their tails: the pooled
        # score (every failure counted) compares them. Between kinds, whose errors fall on
        # different stretches and groups, the median over blocks of time decides.
        per_kind = [min((c for c in calibrations if c.kind == k), key=lambda c: c.score) for k in kinds]
        self.location_scores_ = {c.kind: c.block_score for c in per_kind}
        self.location_block_scores_ = {c.kind: c.blocks for c in per_kind}
        # The trees must beat the flat location clearly (trees_margin) and on most blocks of
        # time: on a tie, or a lead from half the period, the simpler rule.
        handicap = {kind: 1.0 / (1.0 - self.trees_margin) for kind in TREE_KINDS} | {"flat": 1.0}
        best = min(per_kind, key=lambda c: c.block_score * handicap[c.kind])
        if best.kind in TREE_KINDS and "flat" in self.location_block_scores_:
            wins = best.blocks < self.location_block_scores_["flat"]
            if 2 * wins.sum() <= wins.size:
                best = next(c for c in per_kind if c.kind == "flat")
        self.location_kind_ = best.kind
        self.offset_index_ = best.offset_index
        self.mondrian_index_ = best.mondrian_index
        self.mondrian_ = self._mondrian_name(best.mondrian_index, names)
        self.scale_edges_ = best.edges
        self.residual_quantiles_, self.calibration_counts_ = best.table, best.counts
        self.scale_floor_, self.scale_model_ = best.floor, best.scale_model
        self.n_rounds_, self.round_errors_ = best.rounds, best.round_errors
        self.location_model_ = self._fit_model(self._makers(best.kind, best.rounds[0])[0],
                                               self._augment(Xa, best.kind), best.z)
        self.fitted_categories_ = self._fit_late_types(Xa, y)
        self.guard_floors_ = self._guard_needed(Xa[best.rows], y[best.rows], best.alloc)
        self.guard_active_ = any(self.guard_floors_.values())
        return self

    def _fit_late_types(self, Xa: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Give each category of a categorical Mondrian feature (a task type) that the calibration
        left without ``min_calibration`` residuals of its own, but whose training jobs hold that
        many after its first ``min_calibration``, the quantiles of the final model's standardised
        residuals on those jobs; returns those categories.

        A type that first ran in the last forward block was predicted there only by models that
        had never seen it, so its errors stayed in the pooled quantiles; the final model has
        seen its jobs. Its own residuals, though in-sample, keep its shape (two-valued peaks
        whose large mode is common in one type and rare in another), which the pooled shape of
        other types does not.
        """
        index = self.mondrian_index_
        if index is None or index < 0 or not self.categorical_mask_[index]:
            return np.empty(0, dtype=np.intp)
        cats = self._categories(Xa, index)
        settled = times_before(Xa[:, index]) >= self.min_calibration
        counts = np.bincount(cats[settled], minlength=self.calibration_counts_.size)
        late = np.flatnonzero((self.calibration_counts_ < self.min_calibration)
                              & (counts >= max(int(self.min_calibration), 1)))
        late = late[late > 0]
        if late.size == 0:  # the usual case: no prediction over the training rows
            return late
        rows = np.flatnonzero(settled & np.isin(cats, late))
        mu, scale = self._location_scale(Xa[rows])
        standardised = (np.log(y[rows]) - mu) / scale
        for c in late:
            self.residual_quantiles_[c] = weighted_quantiles(standardised[cats[rows] == c], self.levels_)
        return late

    def _guard_needed(self, Xa: np.ndarray, y: np.ndarray, alloc: np.ndarray) -> dict[str, bool]:
        """Per floor of :data:`GUARD_FLOORS`, whether the model lacks evidence that it beats it.

        The model's calibrated allocations and the guard's are priced like the business score on
        the calibration rows whose group had fewer than ``guard_settle`` peaks; the guard stays
        unless the model was cheaper there, on at least ``guard_evidence`` such jobs. The floor
        of a group without any peak must also be beaten on at least ``guard_evidence`` jobs of
        its own: the many jobs with a few peaks do not vouch for the few with none, whose
        allocation comes from other groups. While it holds, so does the floor of a task type
        unseen in ``fit`` (the calibration holds no such jobs).
        """
        if self.guard is None or self.history_index_ is None:
            return dict.fromkeys(GUARD_FLOORS, False)
        guarded, _ = self._guard(Xa, alloc)
        count = np.nan_to_num(Xa[:, self.history_index_], nan=0.0)
        little = count < max(self.guard_min_history, self.guard_settle)
        unit = unit_failure_cost(float(y.mean()), self.penalty)
        self.guard_evidence_ = {}
        for floor, rows in (("few_peaks", little), ("no_history", count < self.guard_min_history)):
            if rows.sum() < self.guard_evidence:
                continue
            cost = [float(np.sum(unit * (a[rows] < y[rows]) + np.maximum(a[rows] - y[rows], 0.0)))
                    for a in (alloc, guarded)]
            self.guard_evidence_[floor] = {"jobs": int(rows.sum()), "model_cost": cost[0],
                                           "guard_cost": cost[1]}
        beaten = {floor: e["model_cost"] < e["guard_cost"] for floor, e in self.guard_evidence_.items()}
        few = not beaten.get("few_peaks", False)
        return {"no_history": few or not beaten.get("no_history", False), "few_peaks": few}

    # ------------------------------------------------------------------ prediction
    def unit_cost(self) -> float:
        """Price of a failure in GB: ``penalty x`` :meth:`peak_unit_gb` (latest jobs' mean peak).

        Read at prediction time, so ``set_params(penalty=...)`` on a fitted model re-prices the
        allocations without refitting (the distributions do not depend on the penalty).
        """
        return unit_failure_cost(self.peak_unit_gb(), self.penalty)

    def _distribution(self, Xa: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Location and scale of ``log(peak)`` and the residual quantiles of each row."""
        if self.penalty <= 0:
            raise ValueError(f"penalty must be positive, got {self.penalty}")
        mu, scale = self._location_scale(Xa)
        cats = self._categories(Xa, self.mondrian_index_, scale, self.scale_edges_)
        return mu, scale * self.widen, cats

    def _location_scale(self, Xa: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Location and scale (before ``widen``) of ``log(peak)`` of each row."""
        Xt = self._augment(Xa, self.location_kind_)
        mu = predict_fast(self.location_model_, Xt) + self._log_offset(Xa, self.offset_index_)
        return mu, np.maximum(predict_fast(self.scale_model_, Xt), self.scale_floor_)

    def _allocate(self, mu: np.ndarray, scale: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
        """Cost-optimal allocation of ``exp(mu + scale x quantiles)`` per row."""
        out = np.empty(mu.size)
        unit_cost = self.unit_cost()
        for start in range(0, mu.size, _CHUNK):
            sl = slice(start, start + _CHUNK)
            log_samples = mu[sl, None] + scale[sl, None] * quantiles[sl]
            samples = np.exp(np.clip(np.nan_to_num(log_samples, nan=self.log_cap_), None, self.log_cap_))
            out[sl] = optimal_allocation_from_samples(samples, unit_cost, self.weights_)
        return out

    def _model_allocation(self, Xa: np.ndarray) -> np.ndarray:
        mu, scale, cat = self._distribution(Xa)
        return self._allocate(mu, scale, self.residual_quantiles_[cat])

    def _guarded(self, Xa: np.ndarray, alloc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The guard's allocation where its floors hold, and where it changed the model's."""
        if not getattr(self, "guard_active_", True):
            return alloc, np.zeros(alloc.size, dtype=bool)
        few_peaks = getattr(self, "guard_floors_", {}).get("few_peaks", True)
        return self._guard(Xa, alloc, settle=self.guard_settle if few_peaks else 0)

    def _guard(self, Xa: np.ndarray, alloc: np.ndarray,
               settle: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Both floors of the guard; ``settle`` (``guard_settle`` by default; 0: none) bounds the
        history of the groups that get the floor of a few peaks."""
        if self.guard is None or self.history_index_ is None:
            return alloc, np.zeros(alloc.size, dtype=bool)
        # Without a request (data that has none) the floors are the peers' and the group's own
        # peaks: a new task type there is still held to its largest peak x the margin.
        request = None if self.request_index_ is None else Xa[:, self.request_index_]
        peers = None if self.peers_index_ is None else Xa[:, self.peers_index_]
        seen = None if self.seen_index_ is None else Xa[:, self.seen_index_] * self.guard_margin
        # A task type the model was never fitted on keeps the floor of a group's first peaks
        # (its largest peak so far, capped at the request) for as long as the guard holds, even
        # where the floor of a few peaks is set aside: no calibration job vouches for such a type.
        unknown = None if self.unknown_task_ is None else Xa[:, self.task_index_] == self.unknown_task_
        return guard_allocation(
            alloc, Xa[:, self.history_index_], request, peers,
            mode=self.guard, min_history=self.guard_min_history, seen_gb=seen,
            settle_history=self.guard_settle if settle is None else settle, unsettled=unknown,
            cap_history=self.guard_settle if self.guard_cap else None,
        )

    def _predict(self, Xa: np.ndarray) -> np.ndarray:
        return self._guarded(Xa, self._model_allocation(Xa))[0]

    def predict_quantile(self, X, level: float) -> np.ndarray:
        """Each job's predicted ``level`` quantile of its peak (GB), before the cost optimum and
        the guard: the calibration's own statement, checkable on later jobs."""
        check_is_fitted(self)
        if not 0.0 < level < 1.0:
            raise ValueError(f"level must be in (0, 1), got {level}")
        mu, scale, cat = self._distribution(self._validate_X(X, reset=False))
        q = np.array([np.interp(level, self.levels_, row) for row in self.residual_quantiles_])
        return np.exp(np.minimum(mu + scale * q[cat], self.log_cap_))

    def explain(self, X) -> pd.DataFrame:
        """Per job: allocation, predicted median, log-scale, quantile level chosen, probability of
        failure and expected waste under the predicted distribution, calibration category and
        whether the guard set the allocation."""
        check_is_fitted(self)
        Xa = self._validate_X(X, reset=False)
        mu, scale, cat = self._distribution(Xa)
        alloc, guarded = self._guarded(Xa, self._model_allocation(Xa))
        alloc = self._as_allocation(alloc)
        q = self.residual_quantiles_[cat]
        samples = np.exp(np.minimum(mu[:, None] + scale[:, None] * q, self.log_cap_))
        below = samples <= alloc[:, None] * (1 + 1e-12)
        level = (self.weights_[None, :] * below).sum(1)
        waste = (self.weights_[None, :] * np.maximum(alloc[:, None] - samples, 0.0)).sum(1)
        medians = np.array([np.interp(0.5, self.levels_, r) for r in self.residual_quantiles_])
        median = np.exp(mu + scale * medians[cat])
        return pd.DataFrame(
            {
                "allocation_gb": alloc,
                "median_gb": median,
                "log_scale": scale,
                "quantile_level": level,
                "p_failure": 1.0 - level,
                "expected_waste_gb": waste,
                "calibration_category": cat,
                "guarded": guarded,
            }
        )


def search_space(trial) -> dict:
    """Optuna search space of :class:`CostAwareRegressor` (the penalty is the study's, not tuned)."""
    return {
        **suggest_preprocessor_params(trial),
        # The history level the trees read: a longer memory is less noisy, a shorter one lags
        # less behind drift; a group short of peaks borrows its coarse group's.
        "pre__ewm_alpha": trial.suggest_float("pre__ewm_alpha", 0.05, 0.5, log=True),
        "pre__min_history": trial.suggest_categorical("pre__min_history", [1, 3, 5]),
        "n_estimators": trial.suggest_int("n_estimators", 50, 400, step=50),
        "learning_rate": trial.suggest_float("learning_rate", 0.03, 0.3, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 7, 63, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 5, 100, log=True),
        "scale_num_leaves": trial.suggest_int("scale_num_leaves", 4, 63, log=True),
        "widen": trial.suggest_float("widen", 0.9, 1.2),
        "recency": trial.suggest_float("recency", 0.0, 3.0),
    }
