"""The artifact file format: every pickle the project writes is checked before it is loaded again.

A file is a magic line naming what it holds, a JSON header line, then a pickle payload. The header
holds the format version, the library version, the payload's length and SHA-256, and optionally an
HMAC-SHA256 signature of the payload. :func:`read_artifact` checks all of these **before**
unpickling anything and refuses (:class:`ArtifactError`) a file whose payload does not match its
checksum, whose format major version this library cannot read, or whose signature is missing or
wrong while a signing key is configured.

Trust model
-----------
Pickles execute code when loaded. The checksum catches corruption and accidental edits, not an
attacker who can rewrite the file (they can rewrite the checksum too): load only artifacts this
project wrote, from storage you trust. To protect against tampering, set a secret in the
environment variable ``RESOURCE_PREDICTION_SIGNING_KEY`` both when saving and when loading: files
are then signed with HMAC-SHA256 and unsigned or wrongly signed files are refused. A signed file
cannot be loaded without the key.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> path = Path(tempfile.mkdtemp()) / "numbers.pkl"
>>> _ = write_artifact(path, [1, 2, 3], magic=b"EXAMPLE\\n", header={"what": "numbers"})
>>> read_artifact(path, magic=b"EXAMPLE\\n", expected=list, what="example file")
[1, 2, 3]
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np

import resource_prediction

__all__ = [
    "FORMAT_VERSION",
    "SIGNING_KEY_ENV",
    "ArtifactError",
    "jsonable",
    "read_artifact",
    "read_artifact_header",
    "write_artifact",
]

#: ``major.minor``: a reader accepts any file of its own major version. 2.0: models hold their
#: telemetry schema and the composed estimators (1.x files name classes that no longer exist, so
#: they are refused with a clear message instead of failing inside the unpickler). 3.0: the
#: preprocessor computes the job-adjusted level ``hist_grp_level`` (2.x models lack the feature).
#: 4.0: the cost-aware model's guard reads the group's largest peak and its Mondrian split may be
#: the predicted scale (3.x cost-aware models lack both). 5.0: the cost-aware model has
#: ``trees_margin`` and ``relative``, and its trees are relative to the group's level (4.x models
#: lack the parameters). 6.0: the cost-aware model chooses its boosting rounds (``round_grid``;
#: 5.x models lack it). 7.0: the job-adjusted level has longer-memory candidates and may shrink a
#: group's mean towards its parent's (``JobLevel.memories``, ``shrinkage``; 6.x preprocessors lack
#: them). 8.0: the job-adjusted level keeps the errors that choose its candidates per group, as the
#: jobs saw them (``JobLevel.choice_``, ``choose_within``; 7.x levels lack both). 9.0: the
#: cost-aware model's Mondrian candidates include the spread of the group's recent peaks
#: (``spread``, ``spread_edges``; 8.x cost-aware models lack them). 10.0: the job-adjusted level
#: has the static level alone among its candidates, and build telemetry's static level a trend
#: per component (``JobLevel.trend``, ``STATIC``; 9.x levels lack both). 10.1: the cost-aware
#: model may fit its location trees with the Huber loss and grow them beyond ``n_estimators``
#: (``huber_delta``, ``extend_rounds``; 10.0 models read as before). 10.2: the job-adjusted level
#: may average its candidates, and its static part price pairs of categories (``JobLevel.combine``,
#: ``interactions``; 10.1 levels read as choosing one, without interactions). 10.3: the static
#: level has its own module, and the cost-aware model's guard may cap a new task type's jobs
#: (``guard_cap``; 10.2 models read as before, without the cap). 10.4: the preprocessor leaves a
#: missing request missing (``unfilled_``; 10.3 preprocessors read as filling it). 10.5: the static
#: level may give each task type its own slope of every numeric feature (``StaticLevel.slopes``;
#: 10.4 levels read as without them).
FORMAT_VERSION = "10.5"
SIGNING_KEY_ENV = "RESOURCE_PREDICTION_SIGNING_KEY"
_MAX_HEADER_BYTES = 1 << 20


class ArtifactError(ValueError):
    """A file that must not be loaded (corrupt, tampered, unsigned or incompatible)."""


def jsonable(value: Any) -> Any:
    """``value`` as strict JSON: numpy scalars as Python ones, non-finite floats and objects as text.

    Dicts and lists of plain values keep their shape; estimators and other objects become their
    ``repr``.

    Examples
    --------
    >>> jsonable({"alpha": np.float64(0.9), "limit": float("inf"), "levels": (1, 2)})
    {'alpha': 0.9, 'limit': 'inf', 'levels': [1, 2]}
    """
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple) and all(
        isinstance(v, str | int | float | bool | np.generic | type(None)) for v in value
    ):
        return [jsonable(v) for v in value]
    return repr(value)


def _signing_key() -> bytes | None:
    key = os.environ.get(SIGNING_KEY_ENV)
    return key.encode() if key else None


def write_artifact(path: str | Path, obj: Any, *, magic: bytes, header: dict[str, Any]) -> Path:
    """Pickle ``obj`` to ``path`` behind ``magic`` and a checksummed header (signed with a key set).

    ``header`` adds descriptive JSON fields; the file is written whole or not at all.
    """
    path = Path(path)
    payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    key = _signing_key()
    full = {
        "format_version": FORMAT_VERSION,
        "library_version": resource_prediction.__version__,
        "python": sys.version.split()[0],
        **jsonable(header),
        "payload_bytes": len(payload),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "signature": hmac.new(key, payload, hashlib.sha256).hexdigest() if key else None,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        fh.write(magic)
        fh.write(json.dumps(full, sort_keys=True).encode() + b"\n")
        fh.write(payload)
    tmp.replace(path)
    return path


def read_artifact_header(path: str | Path, *, magic: bytes, what: str) -> dict[str, Any]:
    """The JSON header of an artifact file (nothing is unpickled)."""
    return _read(Path(path), magic, what, payload=False)[0]


def read_artifact(path: str | Path, *, magic: bytes, expected: type, what: str) -> Any:
    """The object in an artifact file, unpickled only after its version, checksum and signature pass.

    Raises
    ------
    ArtifactError
        Not such a file (``what`` names it in the message), an incompatible format version, a
        payload that does not match its checksum, a missing/invalid signature while a signing key
        is set, or an object that is not an ``expected``.
    """
    _, payload = _read(Path(path), magic, what, payload=True)
    obj = pickle.loads(payload)  # verified by _read; see the trust model in the module docstring
    if not isinstance(obj, expected):
        raise ArtifactError(f"{path} holds a {type(obj).__name__}, not a {expected.__name__}")
    return obj


def _read_header(fh, path: Path, magic: bytes, what: str) -> dict[str, Any]:
    if fh.read(len(magic)) != magic:
        raise ArtifactError(f"{path} is not a resource-prediction {what} (bad magic line)")
    line = fh.readline(_MAX_HEADER_BYTES)
    try:
        header = json.loads(line)
    except ValueError as exc:
        raise ArtifactError(f"{path}: unreadable header ({exc})") from None
    if not isinstance(header, dict):
        raise ArtifactError(f"{path}: unreadable header")
    version = str(header.get("format_version", ""))
    if version.split(".")[0] != FORMAT_VERSION.split(".")[0]:
        raise ArtifactError(
            f"{path} was written in format {version or '?'} by resource-prediction "
            f"{header.get('library_version', '?')}; this version "
            f"({resource_prediction.__version__}) reads format {FORMAT_VERSION.split('.')[0]}.x: "
            "write it again or use a matching library version"
        )
    return header


def _check_payload(path: Path, header: dict[str, Any], data: bytes) -> None:
    if len(data) != header.get("payload_bytes") or hashlib.sha256(data).hexdigest() != header.get(
        "payload_sha256"
    ):
        raise ArtifactError(
            f"{path}: payload does not match its recorded SHA-256 (corrupt or modified); refusing to load"
        )
    key = _signing_key()
    signature = header.get("signature")
    if key is not None:
        expected = hmac.new(key, data, hashlib.sha256).hexdigest()
        if not signature or not hmac.compare_digest(str(signature), expected):
            raise ArtifactError(
                f"{path}: {'invalid' if signature else 'missing'} signature for the key in "
                f"{SIGNING_KEY_ENV}; refusing to load"
            )
    elif signature:
        raise ArtifactError(
            f"{path} is signed: set {SIGNING_KEY_ENV} to the signing key to verify and load it"
        )


def _read(path: Path, magic: bytes, what: str, payload: bool) -> tuple[dict[str, Any], bytes | None]:
    """Header (and verified payload) of an artifact file."""
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}")
    with path.open("rb") as fh:
        header = _read_header(fh, path, magic, what)
        if not payload:
            return header, None
        data = fh.read()
    _check_payload(path, header, data)
    return header, data
