"""The models the simulation offers: every ``DeployableModel`` file under ``trained_models/``.

The training exports (see :mod:`resource_prediction.training`)::

    trained_models/app/classification/<family>.pkl   best classification model  -> "Classification"
    trained_models/app/qe/qe_balanced.pkl            QE Pareto variants          -> "Quantile Ensemble: ..."
    trained_models/app/qe/qe_tiny_under_alloc.pkl
    trained_models/app/qe/qe_small_waste.pkl
    trained_models/app/cost_aware/cost_aware_safe.pkl  the safe variant -> "Cost-aware: no more ..."
    trained_models/champion.pkl                      overall champion            -> "Overall champion"
    trained_models/<family>.pkl                      best model of each family   -> "<family>"

Any other ``.pkl`` below ``trained_models/`` is offered under its relative path. Discovery only lists
files; :func:`load_entry` loads one when it is selected (errors are the caller's to show).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from resource_prediction.paths import ArtifactPaths

__all__ = [
    "ARTIFACTS_ENV",
    "QE_VARIANTS",
    "ModelEntry",
    "discover_models",
    "load_entry",
    "resolve_artifacts_dir",
]

#: Environment variable naming the artifacts directory when none is given (used by ``make app``
#: runs and the Voila test to point the notebook elsewhere).
ARTIFACTS_ENV = "RESOURCE_PREDICTION_ARTIFACTS"

#: File stem of each exported quantile-ensemble variant -> its label in the app, in display order.
QE_VARIANTS: dict[str, str] = {
    "qe_balanced": "Balanced Approach",
    "qe_tiny_under_alloc": "Tiny Under Allocation",
    "qe_small_waste": "Small Memory Waste",
}

#: Display order of the kinds of entries.
KIND_ORDER = ("classification", "quantile_ensemble", "champion", "variant", "family", "other")


@dataclass(frozen=True)
class ModelEntry:
    """One model file offered by the simulation.

    Attributes
    ----------
    key : str
        Path relative to ``trained_models/`` (posix): unique and stable.
    label : str
        What the app shows.
    path : Path
        The ``.pkl`` file.
    kind : str
        ``classification``, ``quantile_ensemble``, ``champion``, ``variant``, ``family`` or ``other``.
    """

    key: str
    label: str
    path: Path
    kind: str


def resolve_artifacts_dir(artifacts_dir: str | Path | None = "") -> Path:
    """The artifacts directory: ``artifacts_dir`` if given, else ``$RESOURCE_PREDICTION_ARTIFACTS``,
    else the first of ``artifacts`` and ``../artifacts`` (from the current directory, so the project
    root and ``notebooks/`` both work) that exists, else ``artifacts``."""
    if artifacts_dir is not None and str(artifacts_dir).strip():
        return Path(str(artifacts_dir).strip()).expanduser()
    env = os.environ.get(ARTIFACTS_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    for candidate in (Path("artifacts"), Path("..") / "artifacts"):
        if candidate.is_dir():
            return candidate
    return Path("artifacts")


def _classify(rel: Path, classification_count: int) -> tuple[str, str]:
    parts = rel.parts
    stem = rel.stem
    if parts[:2] == ("app", "classification"):
        label = "Classification" if classification_count == 1 else f"Classification ({stem})"
        return "classification", label
    if parts[:2] == ("app", "qe") and stem in QE_VARIANTS:
        return "quantile_ensemble", f"Quantile Ensemble: {QE_VARIANTS[stem]}"
    if parts[:2] == ("app", "cost_aware"):
        return "variant", "Cost-aware: no more failures than the configured request"
    if len(parts) == 1 and stem == "champion":
        return "champion", "Overall champion"
    if len(parts) == 1:
        return "family", stem
    return "other", rel.with_suffix("").as_posix()


def discover_models(artifacts_dir: str | Path) -> list[ModelEntry]:
    """Every ``.pkl`` under ``<artifacts_dir>/trained_models``, labelled and in display order.

    Order: classification, the QE variants (balanced, tiny under allocation, small waste), the
    overall champion, the family models (by name), then any other file (by path). A missing
    directory gives an empty list.
    """
    root = ArtifactPaths(Path(artifacts_dir)).models
    if not root.is_dir():
        return []
    files = sorted(p for p in root.rglob("*.pkl") if p.is_file())
    rels = [p.relative_to(root) for p in files]
    n_classification = sum(r.parts[:2] == ("app", "classification") for r in rels)
    entries = []
    for path, rel in zip(files, rels, strict=True):
        kind, label = _classify(rel, n_classification)
        entries.append(ModelEntry(key=rel.as_posix(), label=label, path=path, kind=kind))
    qe_order = list(QE_VARIANTS)

    def order(e: ModelEntry) -> tuple:
        within = qe_order.index(Path(e.key).stem) if e.kind == "quantile_ensemble" else 0
        return (KIND_ORDER.index(e.kind), within, e.label)

    return sorted(entries, key=order)


def load_entry(entry: ModelEntry):
    """Load the entry's ``DeployableModel`` (raises what ``DeployableModel.load`` raises)."""
    from resource_prediction.deployable import DeployableModel

    return DeployableModel.load(entry.path)
