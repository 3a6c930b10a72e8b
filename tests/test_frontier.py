"""The safe variant's choice: under-allocation at most the configured request's, with confidence."""

from __future__ import annotations

import numpy as np
import pandas as pd

from resource_prediction.training.frontier import SAFE_CONFIDENCE, choose_safe_penalty, wilson_upper


def test_wilson_upper_bound_covers_the_true_share_at_its_confidence():
    rng = np.random.default_rng(0)
    for share, n in ((0.02, 2000), (0.05, 300), (0.2, 100)):
        observed = rng.binomial(n, share, 20_000) / n
        missed = np.mean(wilson_upper(observed, np.full(observed.size, n)) < share)
        assert abs(missed - (1 - SAFE_CONFIDENCE)) < 0.03, (share, n, missed)


def test_safe_penalty_leaves_room_for_the_noise_of_the_validation_window():
    points = pd.DataFrame({"penalty": [2.0, 10.0, 50.0], "under_pct": [2.1, 1.5, 0.8],
                           "total_over_pct": [40.0, 55.0, 90.0], "n_jobs": 5000})
    assert choose_safe_penalty(points, 2.2, confidence=None) == 2.0  # 2.1 % <= 2.2 %, no margin
    assert choose_safe_penalty(points, 2.2) == 10.0  # 1.5 % of 5,000 is at most 1.8 % (95 %)
    assert choose_safe_penalty(points.assign(n_jobs=200), 2.2) is None  # 200 jobs are too few to tell
    assert choose_safe_penalty(points, 0.5) is None
