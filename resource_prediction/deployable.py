"""A trained model ready to serve: preprocessor + predictor + provenance, saved safely.

:class:`DeployableModel` takes telemetry rows of the source it was trained on (as
:func:`~resource_prediction.data.load_telemetry` returns them, or straight from ``pandas.read_csv``:
build telemetry, a Nextflow trace, an ``sacct --parsable2`` export with its header) and returns the
GB to allocate to each (to each job of an ``sacct`` export: steps are folded into their jobs). It
stores the source's :class:`~resource_prediction.schema.Schema` and refuses rows of another source.
:meth:`DeployableModel.train` builds one from a registered family in one call.

A saved model is one file in the project's checked artifact format
(:mod:`resource_prediction.artifacts`: magic line, JSON header with the payload's SHA-256 and an
optional HMAC signature, then the pickle); :meth:`DeployableModel.load` verifies it before unpickling.
Load only model files this project wrote, from storage you trust (see the trust model there).
"""

from __future__ import annotations

import hashlib
import json
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import resource_prediction
from resource_prediction.artifacts import (
    FORMAT_VERSION,
    SIGNING_KEY_ENV,
    ArtifactError,
    jsonable,
    read_artifact,
    read_artifact_header,
    write_artifact,
)
from resource_prediction.data import prepare_rows
from resource_prediction.features.raw import NAT_SORT_KEY, column, target_gb, time_to_ns
from resource_prediction.metrics import DEFAULT_PENALTY, allocation_metrics
from resource_prediction.preprocessing import ModelPreprocessor
from resource_prediction.registry import ModelFamily, get_family, split_params
from resource_prediction.schema import BUILD, Schema, frame_schema

__all__ = [
    "FORMAT_VERSION",
    "SIGNING_KEY_ENV",
    "ArtifactError",
    "DeployableModel",
    "data_fingerprint",
]

#: The first line of a model file.
MAGIC = b"RESOURCE-PREDICTION-MODEL\n"
_WHAT = "model file"

def _time_ns(raw_df: pd.DataFrame) -> np.ndarray:
    return time_to_ns(column(raw_df, "time"))


def _iso(ns: int) -> str:
    return pd.Timestamp(int(ns), tz="UTC").isoformat()


def data_fingerprint(raw_df: pd.DataFrame, columns: tuple[str, ...] = BUILD.raw_columns) -> str:
    """SHA-256 of the raw telemetry ``columns`` (the schema's), independent of how the frame was read.

    Times are hashed as UTC nanoseconds, numbers as floats and everything else as strings, so the
    frame of ``load_telemetry`` and the one of ``pandas.read_csv(path, sep=";")`` of the same rows
    in the same order give the same fingerprint.
    """
    digest = hashlib.sha256()
    columns = [c for c in columns if c in raw_df.columns]
    digest.update(json.dumps([columns, len(raw_df)]).encode())
    for name in columns:
        col = raw_df[name]
        if name == "time":
            values = pd.Series(_time_ns(raw_df))
        elif pd.api.types.is_numeric_dtype(col.dtype):
            values = pd.Series(col.to_numpy(dtype=np.float64, na_value=np.nan))
        else:
            values = col.astype("str").where(col.notna(), "<NA>")
        digest.update(pd.util.hash_pandas_object(values, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def _library_versions() -> dict[str, str]:
    import lightgbm
    import sklearn
    import xgboost

    return {
        "resource_prediction": resource_prediction.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scikit-learn": sklearn.__version__,
        "xgboost": xgboost.__version__,
        "lightgbm": lightgbm.__version__,
    }


def latest_per_group(raw_df: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """The latest row of each history group (what an export sizes the next job of), no target."""
    variants = [c for c in (*schema.fine, "buildProfile") if c in raw_df.columns]
    latest = raw_df.sort_values("time", kind="stable").groupby(variants, dropna=False, sort=False).tail(1)
    return latest.drop(columns=[c for c in ("max_rss", "max_rss_gb") if c in latest.columns]).copy()


def _training_metadata(fam, params, estimator, preprocessor, schema, raw_df, y, *, penalty, seed) -> dict:
    """Provenance of a model fitted on ``raw_df``: family, parameters, features, source, training
    rows and versions."""
    ns = _time_ns(raw_df)
    ns = ns[ns != NAT_SORT_KEY]
    first, last = (
        (_iso(ns.min()), _iso(ns.max())) if ns.size else (None, None)
    )
    known = np.isfinite(y)
    return {
        "family": fam.name,
        "task_type": fam.task_type,
        "estimator_class": f"{type(estimator).__module__}.{type(estimator).__qualname__}",
        "params": jsonable(params),
        "estimator_params": jsonable(estimator.get_params(deep=False)),
        "preprocessor_params": jsonable(preprocessor.get_params(deep=False)),
        "penalty": float(penalty),
        "seed": int(seed),
        "features": list(preprocessor.feature_names_),
        "categorical_features": list(preprocessor.categorical_features_),
        "source": schema.describe(),
        "dropped_features": list(preprocessor.dropped_features_),
        "training": {
            "n_rows": int(len(raw_df)),
            "n_rows_with_peak": int(known.sum()),
            "time_start": first,
            "time_end": last,
            "mean_peak_gb": float(np.mean(y[known])),
            "data_sha256": data_fingerprint(raw_df, schema.raw_columns),
        },
        "holdout_metrics": None,
        "library_versions": _library_versions(),
        "format_version": FORMAT_VERSION,
        "created_at": datetime.now(UTC).isoformat(),
    }


class DeployableModel:
    """A fitted preprocessor and predictor with their provenance.

    Parameters
    ----------
    preprocessor : ModelPreprocessor
        Fitted; turns raw rows into the predictor's features.
    model : BasePredictor
        Fitted on the preprocessor's features.
    metadata : dict, optional
        Provenance (see :meth:`get_model_info`); :meth:`train` fills it.

    Examples
    --------
    >>> from resource_prediction.synthetic import generate_telemetry
    >>> from resource_prediction.data import time_split
    >>> train, new = time_split(generate_telemetry(1500, seed=0))
    >>> dm = DeployableModel.train("global_quantile", train)
    >>> gb = dm.predict(new.drop(columns=["max_rss", "max_rss_gb"]))
    >>> gb.shape == (len(new),), dm.get_model_info()["family"]
    (True, 'global_quantile')
    """

    def __init__(self, preprocessor: ModelPreprocessor, model, metadata: dict | None = None,
                 schema: Schema | None = None):
        self.preprocessor = preprocessor
        self.model = model
        self.metadata = dict(metadata or {})
        self._schema = schema
        #: The latest job of each history group in training (see :mod:`resource_prediction.export`).
        self.templates: pd.DataFrame | None = None

    @property
    def schema(self) -> Schema:
        """The source the model was trained on (with its reading options)."""
        schema = self.__dict__.get("_schema")
        return schema if schema is not None else getattr(self.preprocessor, "schema_", BUILD)

    def rows(self, raw_df: pd.DataFrame) -> pd.DataFrame:
        """``raw_df`` as the preprocessor takes it (raw rows of the model's source normalised).

        Raises
        ------
        TelemetryError
            The rows are of another source than the model's.
        """
        return prepare_rows(raw_df, self.schema)

    # ------------------------------------------------------------------ building
    @classmethod
    def train(
        cls,
        family: str | ModelFamily,
        raw_df: pd.DataFrame,
        params: dict[str, Any] | None = None,
        penalty: float = DEFAULT_PENALTY,
        seed: int = 0,
    ) -> DeployableModel:
        """Fit a family's preprocessor and model on raw training rows.

        Parameters
        ----------
        family : str or ModelFamily
            A registered family name (or a family object).
        raw_df : DataFrame
            Raw telemetry with the target (``max_rss`` or ``max_rss_gb``).
        params : dict, optional
            The family's parameters (``pre__`` keys for the preprocessor); defaults when None.
        penalty : float
            The business score's penalty (given to models that take one, and recorded).
        seed : int
            ``random_state`` of models that take one (unless ``params`` sets it).
        """
        fam = family if isinstance(family, ModelFamily) else get_family(family)
        schema = frame_schema(raw_df)
        raw_df = prepare_rows(raw_df, schema)
        params = dict(params or {})
        estimator = fam.make_estimator(params, penalty=penalty, random_state=seed)
        _, pre_params = split_params(params)
        pre_params.setdefault("encoding", getattr(estimator, "preferred_encoding", "category"))
        pre_params.setdefault("schema", schema.name)
        preprocessor = ModelPreprocessor(**pre_params)
        X = preprocessor.fit_transform(raw_df)
        y = target_gb(raw_df)
        if y is None:
            raise ValueError("raw_df needs the target: column 'max_rss' (bytes) or 'max_rss_gb' (GB)")
        known = np.isfinite(y)
        if not known.any():
            raise ValueError("raw_df has no job with a positive peak to learn from")
        estimator.fit(X[known] if not known.all() else X, y[known])

        metadata = _training_metadata(fam, params, estimator, preprocessor, schema, raw_df, y,
                                      penalty=penalty, seed=seed)
        model = cls(preprocessor, estimator, metadata, schema=schema)
        model.templates = latest_per_group(raw_df, schema)
        return model

    # ------------------------------------------------------------------ serving
    def predict(self, raw_df: pd.DataFrame) -> np.ndarray:
        """GB to allocate to each row of ``raw_df``, in the rows' order.

        With the target in ``raw_df`` every job also sees the peaks of earlier rows (causal replay).
        Raw ``sacct`` rows give one value per job (see :meth:`rows`).
        """
        return self.model.predict(self.preprocessor.transform(self.rows(raw_df)))

    def observe(self, raw_df: pd.DataFrame) -> DeployableModel:
        """Add finished jobs (with their peaks) to the memory history; returns ``self``."""
        self.preprocessor.observe(self.rows(raw_df))
        return self

    def explain(self, raw_df: pd.DataFrame) -> pd.DataFrame:
        """Per-row display information: the allocation plus what the model can tell about it.

        Binned classifiers give the bin, its edges and the confidence; the quantile ensemble its
        ``alpha``, ``safety`` and member predictions; models without more give the allocation.
        """
        rows = self.rows(raw_df)
        out = self.model.explain(self.preprocessor.transform(rows))
        out.index = rows.index
        return out

    def evaluate(self, raw_df: pd.DataFrame, penalty: float | None = None, record: bool = False) -> dict:
        """Allocation metrics on rows with known peaks; ``record=True`` stores them as holdout."""
        raw_df = self.rows(raw_df)
        y = target_gb(raw_df)
        if y is None:
            raise ValueError("evaluate needs the target: 'max_rss' (bytes) or 'max_rss_gb' (GB)")
        penalty = self.metadata.get("penalty", DEFAULT_PENALTY) if penalty is None else penalty
        known = np.isfinite(y)
        metrics = allocation_metrics(self.predict(raw_df)[known], y[known], penalty=penalty)
        if record:
            self.set_holdout_metrics(metrics)
        return metrics

    def set_holdout_metrics(self, metrics: dict[str, Any] | None) -> DeployableModel:
        """Record holdout metrics in the metadata; returns ``self``."""
        self.metadata["holdout_metrics"] = jsonable(dict(metrics)) if metrics is not None else None
        return self

    @property
    def holdout_metrics(self) -> dict | None:
        return self.metadata.get("holdout_metrics")

    def get_model_info(self) -> dict[str, Any]:
        """The metadata: family, parameters, features, training data, metrics, versions."""
        return json.loads(json.dumps(self.metadata))

    def __repr__(self) -> str:
        family = self.metadata.get("family", type(self.model).__name__)
        return f"DeployableModel(family={family!r}, features={len(self.metadata.get('features', []))})"

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write the model to ``path`` (``.pkl``); signed when a signing key is set."""
        path = Path(path)
        if path.suffix != ".pkl":
            raise ValueError(f"model files end in .pkl, got {path.name!r}")
        header = {"family": self.metadata.get("family"), "created_at": self.metadata.get("created_at")}
        return write_artifact(path, self, magic=MAGIC, header=header)

    @staticmethod
    def read_header(path: str | Path) -> dict[str, Any]:
        """The JSON header of a model file (nothing is unpickled)."""
        return read_artifact_header(path, magic=MAGIC, what=_WHAT)

    @classmethod
    def load(cls, path: str | Path) -> DeployableModel:
        """Read a model file after checking its version, checksum and signature.

        Raises
        ------
        ArtifactError
            Not a model file, an incompatible format version, a payload that does not match its
            checksum, or a missing/invalid signature while a signing key is set.
        """
        return read_artifact(path, magic=MAGIC, expected=cls, what=_WHAT)
