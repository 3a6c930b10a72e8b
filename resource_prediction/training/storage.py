"""Where Optuna studies live: the one place that turns a storage URL into an Optuna storage.

A storage is named by one URL:

* ``None`` (default): a SQLite file under the artifacts directory
  (:attr:`~resource_prediction.paths.ArtifactPaths.default_storage`, ``studies/optuna.db``). Good for
  one search (its ``n_jobs`` worker processes included); SQLite is not made for many concurrent
  writers.
* ``journal:///abs/path/studies.log`` (or ``journal://relative/path.log``): Optuna's
  :class:`~optuna.storages.JournalStorage` on an append-only file with file locks. Use it for several
  worker processes on one machine.
* any SQLAlchemy URL (``postgresql+psycopg://user:password@host/db``, driver from the ``postgres`` extra, ``mysql+pymysql://...``,
  ``sqlite:///...``): an :class:`~optuna.storages.RDBStorage`. A PostgreSQL database lets workers on
  several machines share the studies.
* ``memory``: in-process only (tests, notebooks); nothing persists.

Every model family gets one study with a stable name (:func:`study_name`), created with
``load_if_exists=True``: rerunning a search continues the same study (the trial count grows, the best
trial is kept), and several processes given the same URL work on the same studies.

RDB storages run with a heartbeat: trials of a killed process stop beating and are marked failed
(``fail_stale_trials``) when a search resumes, instead of staying ``RUNNING`` for ever.

Workers started together on an empty database race to create Optuna's tables: the loser's
``CREATE`` fails on an object the winner has just made. :func:`open_storage` retries, and the retry
finds the schema in place.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path

import sqlalchemy.exc
from optuna.exceptions import ExperimentalWarning
from optuna.storages import BaseStorage, InMemoryStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from resource_prediction.paths import ArtifactPaths

__all__ = [
    "HEARTBEAT_INTERVAL_S",
    "STUDY_PREFIX",
    "describe_storage",
    "open_storage",
    "resolve_storage_url",
    "study_name",
]

log = logging.getLogger(__name__)

#: Study names are ``<STUDY_PREFIX>/<family>``.
STUDY_PREFIX = "resource-prediction"
#: Seconds between heartbeats of a running trial (RDB storages); a trial silent for
#: ``2 x HEARTBEAT_INTERVAL_S`` counts as dead.
HEARTBEAT_INTERVAL_S = 30
#: Attempts at opening an RDB storage whose schema other workers create at the same moment.
SCHEMA_RACE_ATTEMPTS = 5
JOURNAL_SCHEME = "journal://"
MEMORY_URLS = ("memory", ":memory:")


def study_name(family: str, prefix: str = STUDY_PREFIX) -> str:
    """The stable study name of a model family, e.g. ``resource-prediction/xgboost``."""
    return f"{prefix}/{family}"


def resolve_storage_url(storage: str | None, paths: ArtifactPaths | None = None) -> str:
    """The storage URL to use: ``storage`` itself, or the artifacts' default SQLite file."""
    if storage:
        return storage
    return (paths or ArtifactPaths()).default_storage


def _journal_path(url: str) -> Path:
    rest = url[len(JOURNAL_SCHEME):]
    if not rest:
        raise ValueError(f"journal storage URL without a file: {url!r} (use journal:///abs/path.log)")
    return Path(rest)


def open_storage(storage: str | BaseStorage | None, paths: ArtifactPaths | None = None) -> BaseStorage:
    """Open the Optuna storage named by ``storage`` (see the module docstring for the URLs).

    Parent directories of file storages (SQLite, journal) are created.

    Raises
    ------
    ValueError
        An empty journal path.
    """
    if isinstance(storage, BaseStorage):
        return storage
    url = resolve_storage_url(storage, paths)
    if url in MEMORY_URLS:
        return InMemoryStorage()
    if url.startswith(JOURNAL_SCHEME):
        path = _journal_path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    engine_kwargs = None
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        # Wait for a lock rather than fail at once when threads or processes write together.
        engine_kwargs = {"connect_args": {"timeout": 60}}
    return _open_rdb(url, engine_kwargs)


def _rdb(url: str, engine_kwargs: dict | None) -> RDBStorage:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)  # heartbeats: stable in practice
        return RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=HEARTBEAT_INTERVAL_S,
            grace_period=2 * HEARTBEAT_INTERVAL_S,
        )


def _open_rdb(url: str, engine_kwargs: dict | None) -> RDBStorage:
    """An :class:`RDBStorage` with heartbeats, retried while concurrent workers create the schema."""
    for attempt in range(1, SCHEMA_RACE_ATTEMPTS):
        try:
            return _rdb(url, engine_kwargs)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as exc:
            # Another worker created a table, type or version row between our check and our
            # CREATE/INSERT (PostgreSQL: UniqueViolation, DuplicateTable, DuplicateObject).
            log.info("storage schema created concurrently (%s); retrying", type(exc.orig).__name__)
            time.sleep(0.1 * attempt)
    return _rdb(url, engine_kwargs)  # the last attempt raises what it meets


def describe_storage(storage: str | None, paths: ArtifactPaths | None = None) -> str:
    """The URL for logs, with any password hidden."""
    url = resolve_storage_url(storage, paths)
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url
