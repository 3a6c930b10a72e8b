"""Synthetic build telemetry: the project's embedded default data, with a Bayes-optimal oracle.

There is no public copy of real build telemetry, so the generator produces jobs in exactly the raw
schema of :mod:`resource_prediction.data`. How a job's peak memory comes about:

* **Arrivals**: a year of jobs; weekdays carry most of the load, weekends little, office hours more than
  nights, with a nightly batch around 02:00; volume grows slowly over the year.
* **Components**: 40 components with Zipf-like frequencies and heavy-tailed memory scales
  (log-normal across components, from a few GB to hundreds of GB).
* **Code growth**: every component's memory grows over time (0-35 % a year in log terms) and has
  occasional step changes (a new dependency, a refactoring).
* **Job effects** (multiplicative): ``makeType`` (``dbg`` about 1.9x ``opt``), architecture, compiler,
  optimisation level, local parallelism (``localJobs``, about ``(localJobs / 16) ** 0.3``), number of
  targets, heavy targets (``dist`` +40 %), test phase (about 30 % lighter), a little per location.
* **Noise**: log-normal with a spread that differs by component; 0.5-2 % of jobs are outliers about
  2.5x heavier. Given the job's features, the peak is a mixture of two log-normals: the ``truth_*``
  columns hold its parameters.
* **Configured request** (``memreq``): maintained by people per (component, makeType): set from the
  usage seen at the last revision (a high percentile times a headroom, rounded up to coarse steps) and
  revised rarely, so it over-provisions most jobs and under-provisions some after memory grows.
  ``memory_fail_count > 0`` and ``ts_status == "unstable"`` follow from a peak above the request.

**Scenarios** (:data:`SCENARIOS`, ``generate_telemetry(scenario=...)``) vary these settings to test
allocation on data it was not developed on: ``default`` (the data above), ``strong_drift``,
``new_components``, ``workflow_phases``, ``heavy_tails``, ``little_data`` and ``interactions``
(effects that differ by component, accelerating growth and ramps, a spread per location). In every
scenario the peak given the features is a two log-normal mixture whose parameters the ``truth_*``
columns hold (in ``workflow_phases`` the second component is an unobserved large input, not
outliers), so :func:`oracle_allocation` is Bayes-optimal in each.

Calibration (default data, seed 0, 10 % time holdout; regenerate with ``make run``): see the book's
data chapter; the seed project's real holdout had the configured request at 4.2 % under-allocation and
148 % total over-allocation (business score 169) with a mean peak of about 78 GB.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import pandas as pd
import pyarrow as pa

from resource_prediction.allocation import (
    expected_job_cost,
    optimal_allocation_lognormal_mixture,
    unit_failure_cost,
)
from resource_prediction.metrics import DEFAULT_PENALTY
from resource_prediction.schema import BYTES_PER_GB, MB_PER_GB

#: Jobs in the default data set (sized so a full search with evaluation fits in minutes).
DEFAULT_N_JOBS = 50_000
START = pd.Timestamp("2024-01-01", tz="UTC")
SPAN_DAYS = 365

COMPONENTS = (
    "core", "kernel", "network", "storage", "ui", "graphics", "compiler", "runtime", "database",
    "scheduler", "auth", "billing", "search", "media", "codec", "physics", "render", "audio", "ml",
    "vision", "geo", "sim", "analytics", "crypto", "telemetry", "infra", "sdk", "cli", "docs",
    "testing", "drivers", "firmware", "hal", "bootloader", "shell", "viewer", "editor", "parser",
    "protocol", "cache",
)
LOCATIONS = {"eu-west-1": 0.0, "eu-central-1": 0.02, "us-east-1": -0.01, "ap-southeast-1": 0.03}
MAKE_TYPES = {"dbg": np.log(1.9), "opt": 0.0, "rel": np.log(1.1)}
ARCHES = {"linuxx86_64": 0.0, "linuxaarch64": -0.05, "win64": 0.15, "macarm64": -0.10}
COMPILERS = {
    "linuxx86_64": {"gcc12": 0.0, "gcc13": 0.03, "clang16": -0.08, "clang17": -0.06},
    "linuxaarch64": {"gcc12": 0.0, "gcc13": 0.03, "clang17": -0.06},
    "win64": {"msvc19": 0.10, "clang17": -0.02},
    "macarm64": {"clang16": -0.08, "clang17": -0.06},
}
OPT_LEVELS = {"O0": -0.15, "O1": -0.05, "O2": 0.0, "O3": 0.12, "Os": -0.03}
LOCAL_JOBS = np.array([4, 8, 16, 32, 64])
TARGET_POOL = ("all", "tests", "docs", "lib", "app", "plugins", "bench", "tools")
HEAVY_TARGET_EFFECT = np.log(1.4)  # `dist`
BRANCH_PREFIXES = ("main", "release_", "feature_", "bugfix_", "dev_")
BRANCH_NUMBERS = 5000
REQUEST_STEPS_GB = np.array(
    [2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 160, 192, 256, 320, 384, 512, 640, 768, 1024]
)


def _uuids(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random version-4 UUID strings, vectorised."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    hexchars = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    nibbles = np.empty((n, 32), dtype=np.uint8)
    nibbles[:, 0::2] = hexchars[raw >> 4]
    nibbles[:, 1::2] = hexchars[raw & 0x0F]
    out = np.full((n, 36), ord("-"), dtype=np.uint8)
    for dst, src in ((0, 0), (9, 8), (14, 12), (19, 16), (24, 20)):
        width = {0: 8, 9: 4, 14: 4, 19: 4, 24: 12}[dst]
        out[:, dst : dst + width] = nibbles[:, src : src + width]
    offsets = pa.py_buffer(np.arange(0, 36 * (n + 1), 36, dtype=np.int32))
    return pd.array(pa.StringArray.from_buffers(n, offsets, pa.py_buffer(out.tobytes())), dtype="str")


def _strings(codes: np.ndarray, categories) -> pd.api.extensions.ExtensionArray:
    """``categories[codes]`` as a pandas ``str`` array, built without Python-level string work."""
    dictionary = pa.array([str(c) for c in categories], type=pa.string())
    decoded = pa.DictionaryArray.from_arrays(pa.array(np.asarray(codes, dtype=np.int32)), dictionary)
    return pd.array(decoded.cast(pa.string()), dtype="str")


def _arrival_times(rng: np.random.Generator, n: int) -> np.ndarray:
    """Sorted job start times (ns since epoch) with weekday, office-hour and growth patterns."""
    days = np.arange(SPAN_DAYS)
    weekday = (START.day_of_week + days) % 7
    day_w = np.where(weekday < 5, 1.0, np.where(weekday == 5, 0.25, 0.15)) * (1.0 + 0.3 * days / SPAN_DAYS)
    hour_w = np.full(24, 0.15)
    hour_w[8:19] = 1.0
    hour_w[[7, 19, 20]] = 0.5
    hour_w[2] = 0.6  # nightly builds
    day = rng.choice(days, size=n, p=day_w / day_w.sum())
    hour = rng.choice(24, size=n, p=hour_w / hour_w.sum())
    seconds = rng.integers(0, 3600, size=n)
    ns = (day * 86400 + hour * 3600 + seconds).astype(np.int64) * 1_000_000_000 + START.value
    return np.sort(ns)


@dataclass(frozen=True)
class Scenario:
    """Settings of one generator scenario; the defaults are the default data.

    Ranges ``(low, high)`` are the bounds of a per-component uniform draw. Time is in years from
    the start of the data (the data spans one year).
    """

    #: One line on what the scenario is for.
    description: str
    #: Jobs when ``generate_telemetry`` is called without ``n_jobs``.
    n_jobs: int = DEFAULT_N_JOBS
    #: Memory growth per year of each component, in log terms.
    growth_per_year: tuple[float, float] = (0.0, 0.35)
    #: Mean number of step changes per component over the year (Poisson).
    steps_per_component: float = 0.8
    #: Size of an upward step in log terms (one step in five is a -0.15 drop instead).
    step_size: tuple[float, float] = (0.08, 0.35)
    #: Log-normal spread of the peak of a component's ordinary jobs.
    sigma: tuple[float, float] = (0.06, 0.30)
    #: Probability of the second mixture component (outliers, or the large-input mode).
    outlier_prob: tuple[float, float] = (0.005, 0.02)
    #: Outliers are this many times heavier than an ordinary job of the same features.
    outlier_factor: float = 2.5
    #: Extra log spread of outliers: ``sigma_out = sqrt(sigma**2 + extra**2)``.
    outlier_extra_sigma: float = 0.3
    #: Components that first appear mid-stream (between a quarter and 85 % of the year) ...
    late_components: int = 0
    #: ... and components that first appear in the last weeks (86-95 % of the year): shortly before
    #: or while the latest 10 % of the jobs runs.
    very_late_components: int = 0
    #: With ``phases > 1`` the year runs in this many stages; most components run in a few
    #: consecutive stages only, as the processes of a workflow do.
    phases: int = 0
    #: Share of the components that run in every stage when ``phases > 1``.
    always_on_share: float = 0.15
    #: The second mixture component is an unobserved input size instead of outliers: each job's
    #: input is large with the component's probability (``large_input_prob``), and a large input
    #: multiplies the peak by a per-component factor (``large_input_factor``).
    input_size_modes: bool = False
    large_input_prob: tuple[float, float] = (0.2, 0.6)
    large_input_factor: tuple[float, float] = (1.7, 4.0)
    #: Mean revisions of the configured request per (component, makeType) and year (Poisson).
    revisions_per_year: float = 3.0
    #: Standard deviation of effects that differ by component (in log terms): of each build type
    #: and architecture, and of the slope of local parallelism; 0: every component alike.
    interactions: float = 0.0
    #: Growth that accelerates: each component's log memory gains up to this much (uniform per
    #: component) by the end of the year, quadratically in time.
    acceleration: float = 0.0
    #: Share of the components whose memory ramps up by ``ramp_size`` (log) over ``ramp_days`` from
    #: a random time, rather than stepping.
    ramp_share: float = 0.0
    ramp_size: float = 0.3
    ramp_days: float = 20.0
    #: Spread multipliers of the jobs of each cloud location (in the order of ``LOCATIONS``);
    #: empty: the same spread everywhere.
    location_spread: tuple[float, ...] = ()


#: The named scenarios: name -> settings (read-only; :func:`list_scenarios` gives the descriptions).
#:
#: :meta hide-value:
SCENARIOS: Mapping[str, Scenario] = MappingProxyType(
    {
        "default": Scenario("the default data: moderate growth, rare steps, 0.5-2 % outliers"),
        "strong_drift": Scenario(
            "fast memory growth (30-100 % a year in log terms) and frequent, larger step changes",
            growth_per_year=(0.3, 1.0),
            steps_per_component=3.0,
            step_size=(0.1, 0.45),
            revisions_per_year=4.0,
        ),
        "new_components": Scenario(
            "components that first appear mid-stream, some only while the latest 10 % of jobs runs",
            late_components=8,
            very_late_components=5,
        ),
        "workflow_phases": Scenario(
            "task types that run in stages, with two-valued peaks driven by an unobserved input size",
            phases=6,
            sigma=(0.04, 0.15),
            input_size_modes=True,
        ),
        "heavy_tails": Scenario(
            "wider noise and four times more outliers, four times heavier and more spread",
            sigma=(0.08, 0.40),
            outlier_prob=(0.02, 0.08),
            outlier_factor=4.0,
            outlier_extra_sigma=0.5,
        ),
        "little_data": Scenario("the default data with 2,000 jobs", n_jobs=2_000),
        "interactions": Scenario(
            "effects of build type, architecture and parallelism that differ by component, growth "
            "that accelerates, ramps besides steps, and a spread that differs by location",
            interactions=0.2,
            acceleration=0.5,
            ramp_share=0.4,
            location_spread=(1.0, 1.5, 0.7, 1.8),
        ),
    }
)


def list_scenarios() -> dict[str, str]:
    """Name and description of every scenario of :data:`SCENARIOS`."""
    return {name: s.description for name, s in SCENARIOS.items()}


def _scenario(scenario: str | Scenario) -> Scenario:
    """The settings of ``scenario`` (a name of :data:`SCENARIOS` or the settings themselves)."""
    if isinstance(scenario, Scenario):
        return scenario
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
    return SCENARIOS[scenario]


def _component_table(rng: np.random.Generator, extra: np.random.Generator, sc: Scenario) -> pd.DataFrame:
    """Per-component parameters: frequency, memory scale, growth, noise, steps, mix of builds, activity.

    ``rng`` draws what every scenario has, ``extra`` what only some scenarios have (so the default
    data does not depend on them).
    """
    n = len(COMPONENTS)
    weight = 1.0 / np.arange(1, n + 1) ** 0.8
    rng.shuffle(weight)
    table = pd.DataFrame(
        {
            "weight": weight / weight.sum(),
            "base_log": rng.normal(np.log(24.0), 0.9, n),
            "growth_per_year": rng.uniform(*sc.growth_per_year, n),
            "sigma": rng.uniform(*sc.sigma, n),
            "outlier_prob": rng.uniform(*sc.outlier_prob, n),
            "n_steps": rng.poisson(sc.steps_per_component, n),
            "dbg_share": rng.uniform(0.1, 0.4, n),
            "arch_bias": rng.integers(0, len(ARCHES), n),
            "outlier_log_factor": np.full(n, np.log(sc.outlier_factor)),
        },
        index=pd.Index(COMPONENTS, name="component"),
    )
    if sc.input_size_modes:
        table["outlier_prob"] = extra.uniform(*sc.large_input_prob, n)
        table["outlier_log_factor"] = np.log(extra.uniform(*sc.large_input_factor, n))
    table["active_from"], table["active_to"] = _activity_windows(extra, sc, n)
    return table


def _activity_windows(extra: np.random.Generator, sc: Scenario, n: int) -> tuple[np.ndarray, np.ndarray]:
    """When each component runs: ``[active_from, active_to)`` in years (the whole year by default)."""
    span = SPAN_DAYS / 365.0
    start, end = np.zeros(n), np.full(n, np.inf)
    if sc.late_components or sc.very_late_components:
        late = extra.choice(n, sc.late_components + sc.very_late_components, replace=False)
        start[late[: sc.late_components]] = extra.uniform(0.25, 0.85, sc.late_components) * span
        start[late[sc.late_components :]] = extra.uniform(0.86, 0.95, sc.very_late_components) * span
    if sc.phases > 1:
        first = extra.integers(0, sc.phases, n)
        first[: sc.phases] = np.arange(sc.phases)  # every stage runs something
        last = np.minimum(first + extra.integers(0, 3, n), sc.phases - 1)
        always = extra.random(n) < sc.always_on_share
        stage = span / sc.phases
        start = np.where(always, 0.0, first * stage)
        end = np.where(always | (last == sc.phases - 1), np.inf, (last + 1) * stage)
    return start, end


def _pick_components(rng: np.random.Generator, comps: pd.DataFrame, t_years: np.ndarray) -> np.ndarray:
    """Component of each job, drawn by weight among the components running at its time."""
    u = rng.random(t_years.size)
    start, end = comps["active_from"].to_numpy(), comps["active_to"].to_numpy()
    weight = comps["weight"].to_numpy()
    cuts = np.unique(np.concatenate([[0.0], start, end[np.isfinite(end)]]))
    block = np.searchsorted(cuts, t_years, side="right") - 1
    comp_idx = np.empty(t_years.size, dtype=np.int64)
    for b, at in enumerate(cuts):
        in_block = block == b
        if not in_block.any():
            continue
        running = (start <= at) & (end > at)
        if not running.any():
            raise ValueError(f"no component runs at {at:.3f} years: check the scenario's phases")
        cdf = np.cumsum(weight * running)
        cdf /= cdf[-1]
        comp_idx[in_block] = cdf.searchsorted(u[in_block], side="right")
    return comp_idx


@dataclass
class _Jobs:
    """The observable settings of each job, as codes into the tables above (one entry per job)."""

    comp_idx: np.ndarray
    make_idx: np.ndarray
    arch_idx: np.ndarray
    profile_code: np.ndarray
    profiles: list[str]
    compiler_effect: np.ndarray
    opt_idx: np.ndarray
    local_jobs: np.ndarray
    distributed: np.ndarray
    n_targets: np.ndarray
    has_dist: np.ndarray
    target_code: np.ndarray
    is_test: np.ndarray
    loc_idx: np.ndarray
    prefix_idx: np.ndarray
    branch_code: np.ndarray


def _draw_jobs(rng: np.random.Generator, comps: pd.DataFrame, t_years: np.ndarray) -> _Jobs:
    """Draw the component, build type, profile, parallelism, targets, phase, location and branch."""
    n_jobs = t_years.size
    comp_idx = _pick_components(rng, comps, t_years)
    dbg = rng.random(n_jobs) < comps["dbg_share"].to_numpy()[comp_idx]
    make_idx = np.where(dbg, 0, np.where(rng.random(n_jobs) < 0.6, 1, 2))

    arch_p = np.array([0.55, 0.2, 0.15, 0.1])
    arch_idx = np.where(rng.random(n_jobs) < 0.5, comps["arch_bias"].to_numpy()[comp_idx],
                        rng.choice(len(ARCHES), size=n_jobs, p=arch_p))
    opt_names = list(OPT_LEVELS)
    profiles, compiler_effects, offsets, n_compilers = [], [], [], []
    for arch in ARCHES:
        offsets.append(len(profiles))
        n_compilers.append(len(COMPILERS[arch]))
        for comp, effect in COMPILERS[arch].items():
            for opt in opt_names:
                profiles.append(f"{arch}-{comp}-{opt}")
                compiler_effects.append(effect)
    compiler_pick = (rng.random(n_jobs) * np.array(n_compilers)[arch_idx]).astype(int)
    opt_idx = rng.choice(len(opt_names), size=n_jobs, p=[0.1, 0.1, 0.45, 0.25, 0.1])
    profile_code = np.array(offsets)[arch_idx] + compiler_pick * len(opt_names) + opt_idx

    local_jobs = rng.choice(LOCAL_JOBS, size=n_jobs, p=[0.1, 0.25, 0.35, 0.2, 0.1])
    distributed = np.where(rng.random(n_jobs) < 0.4, rng.integers(50, 400, n_jobs), 0)
    n_targets = rng.integers(1, 5, n_jobs)
    has_dist = rng.random(n_jobs) < 0.15
    is_test = rng.random(n_jobs) < 0.3
    loc_idx = rng.choice(len(LOCATIONS), size=n_jobs, p=[0.4, 0.2, 0.3, 0.1])
    prefix_idx = rng.choice(len(BRANCH_PREFIXES), size=n_jobs, p=[0.25, 0.1, 0.45, 0.15, 0.05])
    branch_num = rng.integers(1, BRANCH_NUMBERS, n_jobs)
    return _Jobs(
        comp_idx=comp_idx,
        make_idx=make_idx,
        arch_idx=arch_idx,
        profile_code=profile_code,
        profiles=profiles,
        compiler_effect=np.array(compiler_effects)[profile_code],
        opt_idx=opt_idx,
        local_jobs=local_jobs,
        distributed=distributed,
        n_targets=n_targets,
        has_dist=has_dist,
        target_code=(n_targets - 1) * 2 + has_dist,
        is_test=is_test,
        loc_idx=loc_idx,
        prefix_idx=prefix_idx,
        branch_code=prefix_idx * BRANCH_NUMBERS + branch_num,
    )


@dataclass
class _Effects:
    """Per-component draws of the ``interactions``, ``acceleration`` and ``ramp_share`` settings."""

    make: np.ndarray  # (components, build types)
    arch: np.ndarray  # (components, architectures)
    parallel: np.ndarray  # slope of log(localJobs / 16) per component
    accel: np.ndarray  # log gain by the end of the year
    ramp_at: np.ndarray  # start of the ramp (years); inf: none


def _draw_effects(rng: np.random.Generator, sc: Scenario, n: int) -> _Effects:
    """Draw the per-component effects (all zero in scenarios without them)."""
    return _Effects(
        make=rng.normal(0.0, sc.interactions, (n, len(MAKE_TYPES))),
        arch=rng.normal(0.0, sc.interactions, (n, len(ARCHES))),
        parallel=rng.normal(0.0, sc.interactions, n),
        accel=rng.uniform(0.0, sc.acceleration, n),
        ramp_at=np.where(rng.random(n) < sc.ramp_share, rng.uniform(0.1, 0.95, n) * SPAN_DAYS / 365.0, np.inf),
    )


def _time_effect(effects: _Effects, sc: Scenario, comp_idx: np.ndarray, t_years: np.ndarray) -> np.ndarray:
    """Log memory a component gains at ``t_years`` from accelerating growth and its ramp."""
    t = np.maximum(t_years, 0.0)
    ramp = np.clip((t - effects.ramp_at[comp_idx]) / (sc.ramp_days / 365.0), 0.0, 1.0) * sc.ramp_size
    return effects.accel[comp_idx] * (t / (SPAN_DAYS / 365.0)) ** 2 + ramp


def _step_effect(
    rng: np.random.Generator, comps: pd.DataFrame, sc: Scenario, comp_idx: np.ndarray, t_years: np.ndarray
):
    """Log-memory step changes per component at random times; returns the effect at each job."""
    effect = np.zeros(t_years.size)
    steps = []
    for c, n_steps in enumerate(comps["n_steps"].to_numpy()):
        at = rng.uniform(0.05, SPAN_DAYS / 365.0, n_steps)
        size = np.where(rng.random(n_steps) < 0.8, rng.uniform(*sc.step_size, n_steps), -0.15)
        steps.append((at, size))
        if n_steps:
            mask = comp_idx == c
            effect[mask] = ((t_years[mask, None] >= at[None, :]) * size[None, :]).sum(axis=1)
    return effect, steps


def _peak_distribution(
    comps: pd.DataFrame, sc: Scenario, jobs: _Jobs, steps_effect: np.ndarray, t_years: np.ndarray,
    effects: _Effects,
) -> dict[str, np.ndarray]:
    """Each job's true peak distribution: the ``truth_*`` parameters of a two log-normal mixture."""
    c = jobs.comp_idx
    mu = (
        comps["base_log"].to_numpy()[c]
        + comps["growth_per_year"].to_numpy()[c] * t_years
        + steps_effect
        + np.array(list(MAKE_TYPES.values()))[jobs.make_idx]
        + np.array(list(ARCHES.values()))[jobs.arch_idx]
        + jobs.compiler_effect
        + np.array(list(OPT_LEVELS.values()))[jobs.opt_idx]
        + 0.3 * np.log(jobs.local_jobs / 16.0)
        - 0.05 * (jobs.distributed > 0)
        + 0.06 * (jobs.n_targets - 1)
        + HEAVY_TARGET_EFFECT * jobs.has_dist
        - 0.35 * jobs.is_test
        + np.array(list(LOCATIONS.values()))[jobs.loc_idx]
        + 0.03 * (jobs.prefix_idx == 1)
        + effects.make[c, jobs.make_idx]
        + effects.arch[c, jobs.arch_idx]
        + effects.parallel[c] * np.log(jobs.local_jobs / 16.0)
        + _time_effect(effects, sc, c, t_years)
    )
    sigma = comps["sigma"].to_numpy()[c] * np.where(jobs.make_idx == 0, 1.25, 1.0)
    if sc.location_spread:
        sigma = sigma * np.asarray(sc.location_spread, dtype=float)[jobs.loc_idx]
    if sc.input_size_modes:  # a large input shifts the whole distribution: same spread
        sigma_out = sigma
    else:
        sigma_out = np.sqrt(sigma**2 + sc.outlier_extra_sigma**2)
    return {
        "truth_mu": mu,
        "truth_sigma": sigma,
        "truth_outlier_prob": comps["outlier_prob"].to_numpy()[c],
        "truth_outlier_mu": mu + comps["outlier_log_factor"].to_numpy()[c],
        "truth_outlier_sigma": sigma_out,
    }


def _draw_peaks(rng: np.random.Generator, truth: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Peaks (GB) drawn from each job's mixture, and which jobs drew the second component."""
    second = rng.random(truth["truth_mu"].size) < truth["truth_outlier_prob"]
    log_peak = np.where(
        second,
        rng.normal(truth["truth_outlier_mu"], truth["truth_outlier_sigma"]),
        rng.normal(truth["truth_mu"], truth["truth_sigma"]),
    )
    return np.exp(log_peak), second


def _configured_request(
    rng: np.random.Generator,
    extra: np.random.Generator,
    comps: pd.DataFrame,
    sc: Scenario,
    steps: list,
    jobs: _Jobs,
    t_years: np.ndarray,
    effects: _Effects,
) -> np.ndarray:
    """The human-maintained request (GB) per (component, makeType), revised rarely.

    A component that runs from the start got its first setting some months before the data starts,
    from the usage seen then; one that appears later gets a guess when it appears. Each revision
    sets a high percentile of the usage of the time times a headroom, rounded up to a coarse step.
    Where large inputs are common, the percentile people see is the one of the large inputs.
    """
    make_effects = np.array(list(MAKE_TYPES.values()))
    typical_job_effect = 0.12  # parallelism, targets and profile of an ordinary job, in log terms
    span = SPAN_DAYS / 365.0
    mode_shift = comps["outlier_log_factor"].to_numpy() if sc.input_size_modes else np.zeros(len(comps))
    request = np.empty(t_years.size)
    for c in range(len(comps)):
        row = comps.iloc[c]
        at, size = steps[c]
        born = row["active_from"]
        for m in range(len(make_effects)):
            mask = (jobs.comp_idx == c) & (jobs.make_idx == m)
            if not mask.any():
                continue
            # A first setting, then a revision every ~4 months (default: some months before the data).
            lead = rng.uniform(0.1, 0.6)
            n_revisions = rng.poisson(sc.revisions_per_year * (span - born))
            revisions = np.concatenate(
                [[born if born > 0 else -lead], np.sort(rng.uniform(born, span, n_revisions))]
            )
            step_at_rev = ((revisions[:, None] >= at[None, :]) * size[None, :]).sum(axis=1)
            mu_rev = (
                row["base_log"] + row["growth_per_year"] * revisions + step_at_rev
                + make_effects[m] + typical_job_effect
                + effects.make[c, m] + _time_effect(effects, sc, np.full(revisions.size, c), revisions)
            ) + mode_shift[c]
            if born > 0:  # no usage yet: the first setting is a guess
                mu_rev[0] += extra.normal(0.0, 0.4)
            headroom = rng.uniform(1.3, 2.3, revisions.size)
            wanted = np.exp(mu_rev + 2.3 * row["sigma"]) * headroom
            level = REQUEST_STEPS_GB[np.minimum(np.searchsorted(REQUEST_STEPS_GB, wanted), REQUEST_STEPS_GB.size - 1)]
            which = np.searchsorted(revisions, t_years[mask], side="right") - 1
            request[mask] = level[which]
    return request


def _frame(
    rng: np.random.Generator, jobs: _Jobs, time_ns: np.ndarray, peak_gb: np.ndarray, request_gb: np.ndarray
) -> pd.DataFrame:
    """The raw telemetry frame, with the failure outcomes that follow from a peak above the request."""
    n_jobs = time_ns.size
    over_request = peak_gb > request_gb
    fail_count = np.where(over_request, 1 + rng.poisson(3.0, n_jobs), (rng.random(n_jobs) < 0.002).astype(int))
    unstable = over_request | (rng.random(n_jobs) < 0.03)
    target_sets = [",".join(TARGET_POOL[:k]) + dist for k in range(1, 5) for dist in ("", ",dist")]
    branch_names = [
        "main" if prefix == "main" else f"{prefix}{num}"
        for prefix in BRANCH_PREFIXES
        for num in range(BRANCH_NUMBERS)
    ]
    df = pd.DataFrame(
        {
            "atom_id": _uuids(rng, n_jobs),
            "time": pd.to_datetime(time_ns, utc=True),
            "location": _strings(jobs.loc_idx, list(LOCATIONS)),
            "memory_fail_count": pd.array(fail_count, dtype="Int64"),
            "branch": _strings(jobs.branch_code, branch_names),
            "buildProfile": _strings(jobs.profile_code, jobs.profiles),
            "jobs": pd.array(jobs.distributed, dtype="Int64"),
            "localJobs": pd.array(jobs.local_jobs, dtype="Int64"),
            "makeType": _strings(jobs.make_idx, MAKE_TYPES),
            "targets": _strings(jobs.target_code, target_sets),
            "component": _strings(jobs.comp_idx, COMPONENTS),
            "ts_phase": _strings(jobs.is_test, ("build", "test")),
            "ts_status": _strings(unstable, ("successful", "unstable")),
            "cgroup": _uuids(rng, n_jobs),
            "max_rss": np.round(peak_gb * BYTES_PER_GB),
            "max_cache": np.round(peak_gb * rng.uniform(0.2, 1.5, n_jobs) * BYTES_PER_GB),
            "memreq": request_gb * MB_PER_GB,
        }
    )
    df["max_rss_gb"] = df["max_rss"] / BYTES_PER_GB
    df["memreq_gb"] = df["memreq"] / MB_PER_GB
    return df


def generate_telemetry(
    n_jobs: int | None = None, seed: int = 0, with_truth: bool = False, scenario: str | Scenario = "default"
) -> pd.DataFrame:
    """Generate ``n_jobs`` jobs of raw build telemetry, sorted by time.

    Parameters
    ----------
    n_jobs : int, optional
        Number of jobs (rows); by default the scenario's (50,000; ``little_data`` 2,000).
    seed : int
        Seed of every random draw: the same seed and scenario give the same frame.
    with_truth : bool
        Add the ``truth_*`` columns: the parameters of each job's true peak distribution, a mixture
        ``(1 - p) LogN(mu, sigma) + p LogN(mu_out, sigma_out)`` of the peak in GB, and
        ``truth_is_outlier``, whether the job drew the second component (an outlier, or in
        ``workflow_phases`` a large input).
    scenario : str or Scenario
        A name of :data:`SCENARIOS` (see :func:`list_scenarios`) or settings of your own.

    Returns
    -------
    pandas.DataFrame
        The raw schema (see :data:`resource_prediction.data.RAW_COLUMNS`) with ``time`` as UTC
        timestamps, plus ``max_rss_gb`` and ``memreq_gb`` as :func:`~resource_prediction.data.load_telemetry`
        returns them.

    Examples
    --------
    >>> df = generate_telemetry(1000, seed=1)
    >>> len(df), bool(df["time"].is_monotonic_increasing)
    (1000, True)
    >>> len(generate_telemetry(seed=1, scenario="little_data"))
    2000
    """
    sc = _scenario(scenario)
    n_jobs = sc.n_jobs if n_jobs is None else n_jobs
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be positive, got {n_jobs}")
    rng = np.random.default_rng(seed)
    extra = np.random.default_rng([seed, 1])  # draws of scenario features only
    effects = _draw_effects(np.random.default_rng([seed, 2]), sc, len(COMPONENTS))
    comps = _component_table(rng, extra, sc)
    time_ns = _arrival_times(rng, n_jobs)
    t_years = (time_ns - START.value) / (365.0 * 86400e9)
    jobs = _draw_jobs(rng, comps, t_years)
    steps_effect, steps = _step_effect(rng, comps, sc, jobs.comp_idx, t_years)
    truth = _peak_distribution(comps, sc, jobs, steps_effect, t_years, effects)
    peak_gb, second = _draw_peaks(rng, truth)
    request_gb = _configured_request(rng, extra, comps, sc, steps, jobs, t_years, effects)
    df = _frame(rng, jobs, time_ns, peak_gb, request_gb)
    if with_truth:
        for name, values in truth.items():
            df[name] = values
        df["truth_is_outlier"] = second
    return df


TRUTH_COLUMNS = ("truth_mu", "truth_sigma", "truth_outlier_prob", "truth_outlier_mu", "truth_outlier_sigma")


def has_truth(df: pd.DataFrame) -> bool:
    """Whether the frame carries the generator's truth columns."""
    return all(c in df.columns for c in TRUTH_COLUMNS)


def expected_peak_gb(df: pd.DataFrame) -> np.ndarray:
    """Each job's expected peak (GB) under its true distribution."""
    mu, sigma, p, mu_o, sigma_o = (df[c].to_numpy(dtype=float) for c in TRUTH_COLUMNS)
    return (1 - p) * np.exp(mu + sigma**2 / 2) + p * np.exp(mu_o + sigma_o**2 / 2)


def oracle_allocation(df: pd.DataFrame, penalty: float = DEFAULT_PENALTY) -> np.ndarray:
    """The Bayes-optimal allocation (GB) of each job given its true peak distribution.

    The expected business score of the frame separates into per-job costs
    ``penalty * m * P(Y > a) + E[(a - Y)+]`` with ``m`` the mean peak of the frame (here its expectation
    from the truth columns; for a holdout of thousands of jobs the realised mean is within a fraction of
    a percent). The minimiser solves ``F(a) / f(a) = penalty * m``, so the optimal quantile is higher for
    small jobs than for large ones (see :mod:`resource_prediction.allocation`). No model can do better on
    average: the oracle's holdout score is the physical limit.
    """
    unit_cost, truth = _priced(df, penalty, "oracle_allocation")
    return optimal_allocation_lognormal_mixture(*truth, unit_cost)


def _priced(df: pd.DataFrame, penalty: float, caller: str) -> tuple[float, list[np.ndarray]]:
    """The unit failure cost of ``df``'s jobs (from their expected mean peak) and its truth columns."""
    if not has_truth(df):
        raise ValueError(
            f"{caller} needs the truth columns " + ", ".join(TRUTH_COLUMNS)
            + "; generate the data with generate_telemetry(..., with_truth=True)"
        )
    unit_cost = unit_failure_cost(float(expected_peak_gb(df).mean()), penalty)
    return unit_cost, [df[c].to_numpy(dtype=float) for c in TRUTH_COLUMNS]


def expected_cost_ratio(allocation, df: pd.DataFrame, penalty: float = DEFAULT_PENALTY) -> float:
    """Expected business cost of ``allocation`` (GB, one per row of ``df``) as a multiple of the
    oracle's, from the truth columns.

    The realised score of a few hundred jobs moves by several percent with the peaks drawn (one
    more failure among 200 jobs adds 2.5 points at penalty 5); the expected cost prices every job
    under its true distribution, so it compares allocations without that noise.

    Examples
    --------
    >>> df = generate_telemetry(300, seed=0, with_truth=True)
    >>> expected_cost_ratio(oracle_allocation(df), df)
    1.0
    >>> bool(expected_cost_ratio(1.5 * oracle_allocation(df), df) > 1.0)
    True
    """
    unit_cost, truth = _priced(df, penalty, "expected_cost_ratio")
    oracle = optimal_allocation_lognormal_mixture(*truth, unit_cost)
    allocation = np.asarray(allocation, dtype=float)
    if allocation.shape != oracle.shape:
        raise ValueError(f"expected one allocation per row ({oracle.size}), got shape {allocation.shape}")
    return float(expected_job_cost(allocation, unit_cost, *truth).sum()
                 / expected_job_cost(oracle, unit_cost, *truth).sum())
