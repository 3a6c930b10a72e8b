"""Cost-optimal allocation under the business score.

Why the best quantile differs from job to job
---------------------------------------------
Over ``N`` jobs with peaks ``Y_i`` summing to ``S``, the business score of allocations ``a_i`` is

    100 * (penalty / N * #{i: a_i < Y_i}  +  1 / S * sum_i max(a_i - Y_i, 0)).

``S / N`` is the mean peak ``m``. Multiplying by ``S / 100`` (a constant) the expected score separates
into one term per job, ``penalty * m * P(Y_i > a_i) + E[(a_i - Y_i)+]``: a fixed price ``penalty * m``
(in GB) for a failure, and one GB of price per GB wasted. Its derivative in ``a`` is
``-penalty * m * f_i(a) + F_i(a)``, so the optimum satisfies ``F_i(a) / f_i(a) = penalty * m``.
For a log-normal peak, ``F/f`` grows with the job's scale: a job of 2 GB pays little for a generous
margin and is allocated a high quantile (often above 99.9 %), a job of 300 GB pays a lot for each
extra percent and is allocated a lower one. No single quantile is optimal for all jobs.

Two solvers share this cost:

* :func:`optimal_allocation_lognormal_mixture`: exact for peaks whose log is a two-component normal
  mixture (the synthetic generator's truth; used by the oracle);
* :func:`optimal_allocation_from_samples`: for any predictive distribution given as weighted sample
  points per job (used by the cost-aware model).
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from resource_prediction.metrics import DEFAULT_PENALTY

_SQRT2PI = np.sqrt(2.0 * np.pi)


def unit_failure_cost(mean_peak_gb: float, penalty: float = DEFAULT_PENALTY) -> float:
    """The price of one failed job in GB of waste: ``penalty * mean peak``."""
    return float(penalty * mean_peak_gb)


def _lognormal_parts(a: np.ndarray, mu: np.ndarray, sigma: np.ndarray):
    """CDF, PDF and partial expectation ``E[Y; Y <= a]`` of a log-normal at ``a``."""
    la = np.log(a)
    z = (la - mu) / sigma
    cdf = ndtr(z)
    pdf = np.exp(-0.5 * z * z) / (_SQRT2PI * sigma * a)
    partial = np.exp(mu + 0.5 * sigma * sigma) * ndtr(z - sigma)
    return cdf, pdf, partial


def lognormal_mixture_parts(a, mu, sigma, p_out, mu_out, sigma_out):
    """CDF, PDF and ``E[Y; Y <= a]`` of ``(1 - p) LogN(mu, sigma) + p LogN(mu_out, sigma_out)``."""
    c1, d1, e1 = _lognormal_parts(a, mu, sigma)
    c2, d2, e2 = _lognormal_parts(a, mu_out, sigma_out)
    q = 1.0 - p_out
    return q * c1 + p_out * c2, q * d1 + p_out * d2, q * e1 + p_out * e2


def expected_job_cost(a, unit_cost, mu, sigma, p_out, mu_out, sigma_out) -> np.ndarray:
    """``unit_cost * P(Y > a) + E[(a - Y)+]`` for the mixture (GB)."""
    cdf, _, partial = lognormal_mixture_parts(a, mu, sigma, p_out, mu_out, sigma_out)
    return unit_cost * (1.0 - cdf) + a * cdf - partial


def optimal_allocation_lognormal_mixture(
    mu,
    sigma,
    p_out,
    mu_out,
    sigma_out,
    unit_cost: float,
    grid_size: int = 256,
    iterations: int = 50,
) -> np.ndarray:
    """Allocation minimising each job's expected cost for log-normal mixture peaks.

    A grid over the log range of the distribution brackets the global minimum (the mixture can have
    two local minima), then bisection on the first-order condition ``F(a) - unit_cost * f(a) = 0``
    refines it inside the bracket.
    """
    mu, sigma, p_out, mu_out, sigma_out = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (mu, sigma, p_out, mu_out, sigma_out))
    )
    lo = np.minimum(mu - 4.0 * sigma, mu_out - 4.0 * sigma_out)
    hi = np.maximum(mu + 7.0 * sigma, mu_out + 7.0 * sigma_out)
    steps = np.linspace(0.0, 1.0, grid_size)
    out = np.empty(mu.shape)
    chunk = max(1, 2_000_000 // grid_size)
    flat = [v.ravel() for v in (mu, sigma, p_out, mu_out, sigma_out, lo, hi)]
    res = out.ravel()
    for start in range(0, flat[0].size, chunk):
        sl = slice(start, start + chunk)
        m, s, p, mo, so, low, high = (v[sl, None] for v in flat)
        log_grid = low + (high - low) * steps
        cost = expected_job_cost(np.exp(log_grid), unit_cost, m, s, p, mo, so)
        j = np.argmin(cost, axis=1)
        rows = np.arange(j.size)
        left = log_grid[rows, np.maximum(j - 1, 0)]
        right = log_grid[rows, np.minimum(j + 1, grid_size - 1)]
        m, s, p, mo, so = (v[:, 0] for v in (m, s, p, mo, so))
        for _ in range(iterations):
            mid = 0.5 * (left + right)
            cdf, pdf, _ = lognormal_mixture_parts(np.exp(mid), m, s, p, mo, so)
            rising = cdf - unit_cost * pdf > 0.0
            right = np.where(rising, mid, right)
            left = np.where(rising, left, mid)
        res[sl] = np.exp(0.5 * (left + right))
    return out


def optimal_allocation_from_samples(
    samples: np.ndarray, unit_cost: float | np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """Per-row allocation minimising ``unit_cost * P(Y > a) + E[(a - Y)+]``.

    ``samples`` is ``(n_jobs, k)``: each row the support points of one job's predictive distribution
    (sorted ascending per row), ``weights`` their probabilities ``(k,)`` (uniform by default). The
    optimum of a discrete distribution lies on a support point; with the points sorted, the cost of
    allocating the ``j``-th point is ``unit_cost * (1 - P_j) + P_j * Y_j - sum_{k<=j} w_k Y_k``, with
    ``P_j`` the cumulative weight, computed for all ``j`` at once.
    """
    samples = np.asarray(samples, dtype=float)
    k = samples.shape[1]
    w = np.full(k, 1.0 / k) if weights is None else np.asarray(weights, dtype=float)
    cum_w = np.cumsum(w)
    cum_wy = np.cumsum(samples * w, axis=1)
    uc = np.asarray(unit_cost, dtype=float).reshape(-1, 1) if np.ndim(unit_cost) else unit_cost
    cost = uc * (1.0 - cum_w) + cum_w * samples - cum_wy
    j = np.argmin(cost, axis=1)
    return samples[np.arange(samples.shape[0]), j]
