"""Shared fixtures: small generated data sets (seeded, cached per session)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from resource_prediction.synthetic import generate_telemetry

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def small_telemetry() -> pd.DataFrame:
    """6,000 generated jobs with truth columns (seed 0)."""
    return generate_telemetry(6000, seed=0, with_truth=True)


@pytest.fixture(scope="session")
def medium_telemetry() -> pd.DataFrame:
    """20,000 generated jobs with truth columns (seed 0)."""
    return generate_telemetry(20_000, seed=0, with_truth=True)
