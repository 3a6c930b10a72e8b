"""The processed-data store: the time split and its features, written once, read by later steps.

Notebook 02 writes, under :attr:`~resource_prediction.paths.ArtifactPaths.processed`, the raw time
split and the features of the default preprocessor (Parquet), the fitted preprocessor and a
manifest naming the data file they come from; notebooks 03 and 04 (and the pipeline's
``--skip-preprocessing``) read them back. The preprocessor is a pickle, so it is saved in the
project's checked artifact format (:mod:`resource_prediction.artifacts`): its checksum (and
signature, with a signing key set) is verified before anything is unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from resource_prediction.artifacts import read_artifact, write_artifact
from resource_prediction.paths import ArtifactPaths
from resource_prediction.preprocessing import ModelPreprocessor

__all__ = [
    "PROCESSED_FRAMES",
    "data_identity",
    "has_processed",
    "read_processed",
    "write_processed",
]

#: Frames notebook 02 writes (Parquet): the raw time split and the default preprocessor's features.
PROCESSED_FRAMES: tuple[str, ...] = ("train", "holdout", "X_train", "X_holdout")
PROCESSED_PREPROCESSOR = "preprocessor.pkl"
PROCESSED_MANIFEST = "manifest.json"
#: The first line of the preprocessor's file.
MAGIC = b"RESOURCE-PREDICTION-PREPROCESSOR\n"
_WHAT = "preprocessor file"


def data_identity(path: str | Path) -> dict:
    """What identifies a data file for reuse checks: resolved path, size and modification time."""
    path = Path(path).resolve()
    stat = path.stat()
    return {"path": str(path), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def write_processed(
    paths: ArtifactPaths,
    frames: dict[str, pd.DataFrame],
    preprocessor: ModelPreprocessor,
    data_path: str | Path,
    test_fraction: float,
) -> Path:
    """Write the processed frames, the fitted preprocessor and a manifest; return the directory."""
    missing = set(PROCESSED_FRAMES) - set(frames)
    if missing:
        raise ValueError(f"processed frames missing: {sorted(missing)}")
    out = paths.processed
    out.mkdir(parents=True, exist_ok=True)
    for name in PROCESSED_FRAMES:
        frames[name].to_parquet(out / f"{name}.parquet")
    write_artifact(out / PROCESSED_PREPROCESSOR, preprocessor, magic=MAGIC,
                   header={"preprocessor": repr(preprocessor)})
    manifest = {
        "data": data_identity(data_path),
        "test_fraction": test_fraction,
        "rows": {name: len(frames[name]) for name in PROCESSED_FRAMES},
        "train_end": str(frames["train"]["time"].max()),
        "holdout_start": str(frames["holdout"]["time"].min()),
        "preprocessor": repr(preprocessor),
    }
    (out / PROCESSED_MANIFEST).write_text(json.dumps(manifest, indent=2))
    return out


def read_processed(
    paths: ArtifactPaths, data_path: str | Path | None = None
) -> tuple[dict[str, pd.DataFrame], ModelPreprocessor, dict]:
    """The processed frames, the fitted preprocessor and the manifest of an earlier run.

    With ``data_path`` the manifest must name the same file (same path, size and modification
    time): results of one data set are never silently reused for another.

    Raises
    ------
    FileNotFoundError
        No processed data under ``paths`` (run notebook 02, i.e. the pipeline without
        ``--skip-preprocessing``).
    ValueError
        The processed data comes from another data file.
    ~resource_prediction.artifacts.ArtifactError
        The preprocessor's file fails its checksum or signature (it is not unpickled).
    """
    directory = paths.processed
    manifest_file = directory / PROCESSED_MANIFEST
    if not manifest_file.exists():
        raise FileNotFoundError(
            f"no processed data in {directory}: run notebook 02_feature_engineering first "
            "(the pipeline without --skip-preprocessing)"
        )
    manifest = json.loads(manifest_file.read_text())
    if data_path is not None and manifest["data"] != data_identity(data_path):
        raise ValueError(
            f"the processed data in {directory} comes from {manifest['data']['path']} "
            f"({manifest['data']['bytes']} bytes), not from {Path(data_path).resolve()}: run "
            "notebook 02_feature_engineering again (the pipeline without --skip-preprocessing)"
        )
    frames = {name: pd.read_parquet(directory / f"{name}.parquet") for name in PROCESSED_FRAMES}
    preprocessor = read_artifact(
        directory / PROCESSED_PREPROCESSOR, magic=MAGIC, expected=ModelPreprocessor, what=_WHAT
    )
    return frames, preprocessor, manifest


def has_processed(paths: ArtifactPaths) -> bool:
    """Whether an earlier run left processed data under ``paths``."""
    return (paths.processed / PROCESSED_MANIFEST).exists()
