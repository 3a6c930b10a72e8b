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

Calibration (default data, seed 0, 10 % time holdout; regenerate with ``make run``): see the book's
data chapter; the seed project's real holdout had the configured request at 4.2 % under-allocation and
148 % total over-allocation (business score 169) with a mean peak of about 78 GB.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from resource_prediction.allocation import optimal_allocation_lognormal_mixture, unit_failure_cost
from resource_prediction.data import BYTES_PER_GB, MB_PER_GB
from resource_prediction.metrics import DEFAULT_PENALTY

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


def _component_table(rng: np.random.Generator) -> pd.DataFrame:
    """Per-component parameters: frequency, memory scale, growth, noise, steps, mix of builds."""
    n = len(COMPONENTS)
    weight = 1.0 / np.arange(1, n + 1) ** 0.8
    rng.shuffle(weight)
    return pd.DataFrame(
        {
            "weight": weight / weight.sum(),
            "base_log": rng.normal(np.log(24.0), 0.9, n),
            "growth_per_year": rng.uniform(0.0, 0.35, n),
            "sigma": rng.uniform(0.06, 0.30, n),
            "outlier_prob": rng.uniform(0.005, 0.02, n),
            "n_steps": rng.poisson(0.8, n),
            "dbg_share": rng.uniform(0.1, 0.4, n),
            "arch_bias": rng.integers(0, len(ARCHES), n),
        },
        index=pd.Index(COMPONENTS, name="component"),
    )


def _step_effect(rng: np.random.Generator, comps: pd.DataFrame, comp_idx: np.ndarray, t_years: np.ndarray):
    """Log-memory step changes per component at random times; returns the effect at each job."""
    effect = np.zeros(t_years.size)
    steps = []
    for c, n_steps in enumerate(comps["n_steps"].to_numpy()):
        at = rng.uniform(0.05, SPAN_DAYS / 365.0, n_steps)
        size = np.where(rng.random(n_steps) < 0.8, rng.uniform(0.08, 0.35, n_steps), -0.15)
        steps.append((at, size))
        if n_steps:
            mask = comp_idx == c
            effect[mask] = ((t_years[mask, None] >= at[None, :]) * size[None, :]).sum(axis=1)
    return effect, steps


def _configured_request(
    rng: np.random.Generator,
    comps: pd.DataFrame,
    steps: list,
    comp_idx: np.ndarray,
    make_idx: np.ndarray,
    t_years: np.ndarray,
) -> np.ndarray:
    """The human-maintained request (GB) per (component, makeType), revised rarely."""
    make_effects = np.array(list(MAKE_TYPES.values()))
    typical_job_effect = 0.12  # parallelism, targets and profile of an ordinary job, in log terms
    request = np.empty(t_years.size)
    for c in range(len(comps)):
        row = comps.iloc[c]
        at, size = steps[c]
        for m in range(len(make_effects)):
            mask = (comp_idx == c) & (make_idx == m)
            if not mask.any():
                continue
            # A first setting some months before the data starts, then a revision every ~5 months.
            revisions = np.concatenate(
                [[-rng.uniform(0.1, 0.6)], np.sort(rng.uniform(0, SPAN_DAYS / 365.0, rng.poisson(3.0)))]
            )
            step_at_rev = ((revisions[:, None] >= at[None, :]) * size[None, :]).sum(axis=1)
            mu_rev = (
                row["base_log"] + row["growth_per_year"] * revisions + step_at_rev
                + make_effects[m] + typical_job_effect
            )
            headroom = rng.uniform(1.3, 2.3, revisions.size)
            wanted = np.exp(mu_rev + 2.3 * row["sigma"]) * headroom
            level = REQUEST_STEPS_GB[np.minimum(np.searchsorted(REQUEST_STEPS_GB, wanted), REQUEST_STEPS_GB.size - 1)]
            which = np.searchsorted(revisions, t_years[mask], side="right") - 1
            request[mask] = level[which]
    return request


def generate_telemetry(n_jobs: int = DEFAULT_N_JOBS, seed: int = 0, with_truth: bool = False) -> pd.DataFrame:
    """Generate ``n_jobs`` jobs of raw build telemetry, sorted by time.

    Parameters
    ----------
    n_jobs : int
        Number of jobs (rows).
    seed : int
        Seed of every random draw: the same seed gives the same frame.
    with_truth : bool
        Add the ``truth_*`` columns: the parameters of each job's true peak distribution, a mixture
        ``(1 - p) LogN(mu, sigma) + p LogN(mu_out, sigma_out)`` of the peak in GB.

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
    """
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be positive, got {n_jobs}")
    rng = np.random.default_rng(seed)
    comps = _component_table(rng)
    time_ns = _arrival_times(rng, n_jobs)
    t_years = (time_ns - START.value) / (365.0 * 86400e9)

    comp_idx = rng.choice(len(comps), size=n_jobs, p=comps["weight"].to_numpy())
    dbg = rng.random(n_jobs) < comps["dbg_share"].to_numpy()[comp_idx]
    make_idx = np.where(dbg, 0, np.where(rng.random(n_jobs) < 0.6, 1, 2))

    arch_names = np.array(list(ARCHES))
    arch_p = np.array([0.55, 0.2, 0.15, 0.1])
    arch_idx = np.where(rng.random(n_jobs) < 0.5, comps["arch_bias"].to_numpy()[comp_idx],
                        rng.choice(len(arch_names), size=n_jobs, p=arch_p))
    opt_names = list(OPT_LEVELS)
    profiles, compiler_effects, offsets, n_compilers = [], [], [], []
    for arch in arch_names:
        offsets.append(len(profiles))
        n_compilers.append(len(COMPILERS[arch]))
        for comp, effect in COMPILERS[arch].items():
            for opt in opt_names:
                profiles.append(f"{arch}-{comp}-{opt}")
                compiler_effects.append(effect)
    compiler_pick = (rng.random(n_jobs) * np.array(n_compilers)[arch_idx]).astype(int)
    opt_idx = rng.choice(len(opt_names), size=n_jobs, p=[0.1, 0.1, 0.45, 0.25, 0.1])
    profile_code = np.array(offsets)[arch_idx] + compiler_pick * len(opt_names) + opt_idx
    compiler_effect = np.array(compiler_effects)[profile_code]

    local_jobs = rng.choice(LOCAL_JOBS, size=n_jobs, p=[0.1, 0.25, 0.35, 0.2, 0.1])
    distributed = np.where(rng.random(n_jobs) < 0.4, rng.integers(50, 400, n_jobs), 0)
    n_targets = rng.integers(1, 5, n_jobs)
    has_dist = rng.random(n_jobs) < 0.15
    target_sets = [",".join(TARGET_POOL[:k]) + dist for k in range(1, 5) for dist in ("", ",dist")]
    target_code = (n_targets - 1) * 2 + has_dist
    is_test = rng.random(n_jobs) < 0.3
    loc_names = np.array(list(LOCATIONS))
    loc_idx = rng.choice(loc_names.size, size=n_jobs, p=[0.4, 0.2, 0.3, 0.1])
    prefix_idx = rng.choice(len(BRANCH_PREFIXES), size=n_jobs, p=[0.25, 0.1, 0.45, 0.15, 0.05])
    branch_num = rng.integers(1, 5000, n_jobs)
    branch_names = [
        "main" if prefix == "main" else f"{prefix}{num}" for prefix in BRANCH_PREFIXES for num in range(5000)
    ]
    branch_code = prefix_idx * 5000 + branch_num

    steps_effect, steps = _step_effect(rng, comps, comp_idx, t_years)
    mu = (
        comps["base_log"].to_numpy()[comp_idx]
        + comps["growth_per_year"].to_numpy()[comp_idx] * t_years
        + steps_effect
        + np.array(list(MAKE_TYPES.values()))[make_idx]
        + np.array(list(ARCHES.values()))[arch_idx]
        + compiler_effect
        + np.array(list(OPT_LEVELS.values()))[opt_idx]
        + 0.3 * np.log(local_jobs / 16.0)
        - 0.05 * (distributed > 0)
        + 0.06 * (n_targets - 1)
        + HEAVY_TARGET_EFFECT * has_dist
        - 0.35 * is_test
        + np.array(list(LOCATIONS.values()))[loc_idx]
        + 0.03 * (prefix_idx == 1)
    )
    sigma = comps["sigma"].to_numpy()[comp_idx] * np.where(dbg, 1.25, 1.0)
    p_out = comps["outlier_prob"].to_numpy()[comp_idx]
    mu_out = mu + np.log(2.5)
    sigma_out = np.sqrt(sigma**2 + 0.3**2)
    outlier = rng.random(n_jobs) < p_out
    log_peak = np.where(outlier, rng.normal(mu_out, sigma_out), rng.normal(mu, sigma))
    peak_gb = np.exp(log_peak)

    request_gb = _configured_request(rng, comps, steps, comp_idx, make_idx, t_years)
    over_request = peak_gb > request_gb
    fail_count = np.where(over_request, 1 + rng.poisson(3.0, n_jobs), (rng.random(n_jobs) < 0.002).astype(int))
    unstable = over_request | (rng.random(n_jobs) < 0.03)

    df = pd.DataFrame(
        {
            "atom_id": _uuids(rng, n_jobs),
            "time": pd.to_datetime(time_ns, utc=True),
            "location": _strings(loc_idx, loc_names),
            "memory_fail_count": pd.array(fail_count, dtype="Int64"),
            "branch": _strings(branch_code, branch_names),
            "buildProfile": _strings(profile_code, profiles),
            "jobs": pd.array(distributed, dtype="Int64"),
            "localJobs": pd.array(local_jobs, dtype="Int64"),
            "makeType": _strings(make_idx, MAKE_TYPES),
            "targets": _strings(target_code, target_sets),
            "component": _strings(comp_idx, COMPONENTS),
            "ts_phase": _strings(is_test, ("build", "test")),
            "ts_status": _strings(unstable, ("successful", "unstable")),
            "cgroup": _uuids(rng, n_jobs),
            "max_rss": np.round(peak_gb * BYTES_PER_GB),
            "max_cache": np.round(peak_gb * rng.uniform(0.2, 1.5, n_jobs) * BYTES_PER_GB),
            "memreq": request_gb * MB_PER_GB,
        }
    )
    df["max_rss_gb"] = df["max_rss"] / BYTES_PER_GB
    df["memreq_gb"] = df["memreq"] / MB_PER_GB
    if with_truth:
        df["truth_mu"] = mu
        df["truth_sigma"] = sigma
        df["truth_outlier_prob"] = p_out
        df["truth_outlier_mu"] = mu_out
        df["truth_outlier_sigma"] = sigma_out
        df["truth_is_outlier"] = outlier
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
    if not has_truth(df):
        raise ValueError(
            "oracle_allocation needs the truth columns " + ", ".join(TRUTH_COLUMNS)
            + "; generate the data with generate_telemetry(..., with_truth=True)"
        )
    unit_cost = unit_failure_cost(float(expected_peak_gb(df).mean()), penalty)
    mu, sigma, p, mu_o, sigma_o = (df[c].to_numpy(dtype=float) for c in TRUTH_COLUMNS)
    return optimal_allocation_lognormal_mixture(mu, sigma, p, mu_o, sigma_o, unit_cost)
