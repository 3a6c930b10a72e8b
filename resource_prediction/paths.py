"""Where runs read and write: one place for the artifact layout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_ARTIFACTS_DIR = Path("artifacts")


@dataclass(frozen=True)
class ArtifactPaths:
    """The layout of an artifacts directory (see ``artifacts/README.md``)."""

    root: Path = DEFAULT_ARTIFACTS_DIR

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def default_data(self) -> Path:
        return self.data / "default_telemetry.csv"

    @property
    def processed(self) -> Path:
        return self.data / "processed"

    @property
    def studies(self) -> Path:
        return self.root / "studies"

    @property
    def default_storage(self) -> str:
        return f"sqlite:///{(self.studies / 'optuna.db').resolve()}"

    @property
    def models(self) -> Path:
        return self.root / "trained_models"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def notebooks(self) -> Path:
        return self.root / "notebooks"

    @property
    def bench(self) -> Path:
        return self.root / "bench"

    def ensure(self) -> ArtifactPaths:
        for d in (self.data, self.processed, self.studies, self.models, self.reports):
            d.mkdir(parents=True, exist_ok=True)
        return self
