"""What every numbered notebook does first, in one call, and how it shows paths.

:func:`notebook_setup` turns a notebook's parameters into a :class:`NotebookSetup`: the artifact
layout (created), the telemetry file (generated when none is given), plotly's offline renderer and
pandas' display precision. :meth:`NotebookSetup.show` writes a path the way a published page should
show it: relative to the artifacts folder or the project, never the build machine's absolute path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from resource_prediction.paths import ArtifactPaths
from resource_prediction.pipeline import PROJECT_ROOT, generated_data_path
from resource_prediction.plots.offline import use_offline_renderer
from resource_prediction.processed import read_processed
from resource_prediction.synthetic import DEFAULT_N_JOBS

__all__ = ["NotebookSetup", "notebook_setup", "shown_path"]

#: Decimals pandas shows in the notebooks' tables.
DISPLAY_PRECISION = 2


def shown_path(path: str | Path, artifacts: Path | None = None) -> str:
    """``path`` as a page shows it: under the artifacts folder as ``<folder name>/...``, under the
    project relative to it, else its file name alone (never the build machine's absolute path)."""
    path = Path(path).resolve()
    if artifacts is not None:
        root = Path(artifacts).resolve()
        if path.is_relative_to(root):
            return (Path(root.name) / path.relative_to(root)).as_posix()
    if path.is_relative_to(PROJECT_ROOT):
        return path.relative_to(PROJECT_ROOT).as_posix()
    return path.name


@dataclass(frozen=True)
class NotebookSetup:
    """The artifact layout and the telemetry file of a notebook run."""

    paths: ArtifactPaths
    data_file: Path

    def show(self, path: str | Path) -> str:
        """A path as the page shows it (see :func:`shown_path`)."""
        return shown_path(path, self.paths.root)

    def show_storage(self, storage: str | None) -> str:
        """An Optuna storage as the page shows it: a SQLite file by its shown path, another URL
        without its password."""
        from resource_prediction.training.storage import describe_storage, resolve_storage_url

        url = resolve_storage_url(storage, self.paths)
        if url.startswith("sqlite:///"):
            return f"the SQLite file `{self.show(url.removeprefix('sqlite:///'))}`"
        return f"`{describe_storage(storage, self.paths)}`"

    def processed(self) -> tuple[dict, object, dict]:
        """Notebook 02's processed data of this telemetry file: frames, preprocessor, manifest."""
        return read_processed(self.paths, self.data_file)

    def telemetry(self) -> pd.DataFrame:
        """The whole processed telemetry, training period then holdout, in time order."""
        frames, _, _ = self.processed()
        return pd.concat([frames["train"], frames["holdout"]])


def notebook_setup(
    artifacts_dir: str | Path,
    data_path: str | Path | None = None,
    n_generated_jobs: int = DEFAULT_N_JOBS,
    seed: int = 0,
) -> NotebookSetup:
    """Prepare a notebook: artifact folders, the telemetry file, offline plotly, table precision.

    Parameters
    ----------
    artifacts_dir : path
        Artifacts root (created with its sub-folders).
    data_path : path or None
        Raw telemetry; ``None`` or ``""`` generates ``n_generated_jobs`` jobs (seed ``seed``) once.
    n_generated_jobs, seed : int
        Size and seed of the generated data.
    """
    use_offline_renderer()
    pd.set_option("display.precision", DISPLAY_PRECISION)
    paths = ArtifactPaths(Path(artifacts_dir)).ensure()
    data_file = Path(data_path) if data_path else generated_data_path(paths, n_generated_jobs, seed)
    return NotebookSetup(paths, data_file)
