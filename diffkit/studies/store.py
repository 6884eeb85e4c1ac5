"""The results store: SQLite (standard library), one transaction per cell, crash-safe and resumable.

Layout (``SCHEMA_VERSION`` 1):

- ``meta(key, value)``: ``schema_version`` and the diffkit version that created the store;
- ``studies(study, study_hash, source, created_at)``: one line per stored study (``scaling`` or
  ``scaling@quick``) and the hash of the study content its rows came from;
- ``cells(study, cell_id, status, rows, created_at)`` with PRIMARY KEY (study, cell_id): a cell's result rows
  as JSON ``{"common": values shared by every row, "rows": [the rest of each row]}``, written in one
  transaction, so ``kill -9`` loses at most the cell in flight and a rerun cannot duplicate a cell;
- ``refs(problem_key, P, digits, value, grad, certification)``: the mpmath references, as decimal strings,
  cached once per problem instance;
- ``claims(study, cell_id, owner, claimed_at)``: the cells a run is computing right now, so that two runs on
  one store share the work (added in place: a store without it gets it when opened).

Every check-then-write (a study's first run, a claim) is one ``BEGIN IMMEDIATE`` transaction, so two runs
starting together cannot both insert.

>>> import tempfile, os
>>> with tempfile.TemporaryDirectory() as d:
...     s = Store(os.path.join(d, "r.sqlite"))
...     s.begin("demo", "abc123", "<python>", fresh=False)
...     s.record("demo", "cell-1", "ok", [{"value": 1.5}])
...     s.record("demo", "cell-1", "ok", [{"value": 1.5}])   # a rerun replaces, never duplicates
...     [r["value"] for r in s.rows("demo")], s.statuses("demo")
([1.5], {'cell-1': 'ok'})
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import sqlite3
import time
import uuid
from pathlib import Path

import numpy as np

from .. import __version__

__all__ = ["Store", "StoreError", "SCHEMA_VERSION", "default_store_path", "export"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS studies (study TEXT PRIMARY KEY, study_hash TEXT NOT NULL, source TEXT,
                                    created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cells (study TEXT NOT NULL, cell_id TEXT NOT NULL, status TEXT NOT NULL,
                                  rows TEXT NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY (study, cell_id));
CREATE TABLE IF NOT EXISTS refs (problem_key TEXT PRIMARY KEY, P INTEGER NOT NULL, digits INTEGER NOT NULL,
                                 value TEXT NOT NULL, grad TEXT NOT NULL, certification TEXT);
CREATE TABLE IF NOT EXISTS claims (study TEXT NOT NULL, cell_id TEXT NOT NULL, owner TEXT NOT NULL,
                                   claimed_at REAL NOT NULL, PRIMARY KEY (study, cell_id));
"""


class StoreError(RuntimeError):
    """The store cannot be used as asked (other schema, other study file); the message says what to do."""


def default_store_path() -> Path:
    """``$DIFFKIT_STORE`` if set, else ``.diffkit/results.sqlite`` under the current directory."""
    return Path(os.environ.get("DIFFKIT_STORE") or Path.cwd() / ".diffkit" / "results.sqlite")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def _clean(value):
    """JSON has no NaN: store non-finite floats as None (read back as NaN by pandas)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(obj) -> str:
    return json.dumps(obj, default=_json_default, allow_nan=False, sort_keys=True)


class Store:
    """An SQLite results store; see the module docstring for its tables."""

    def __init__(self, path=None):
        self.path = Path(path) if path is not None else default_store_path()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"  # one per Store: runs in threads
        _make_parent(self.path)
        if self.path.is_dir():
            raise StoreError(f"the results store {self.path} is a directory; give the path of a file in it, e.g. "
                             f"{self.path / 'results.sqlite'}")
        try:
            self.conn = sqlite3.connect(self.path, timeout=60)
            self.conn.execute("PRAGMA synchronous=FULL")
            tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as err:
            raise StoreError(f"{self.path} is not a diffkit results store ({err}); move it aside or point "
                             f"DIFFKIT_STORE at a new file") from None
        if tables and "meta" not in tables:
            raise StoreError(f"{self.path} is an SQLite file but not a diffkit results store (tables: "
                             f"{', '.join(sorted(tables))}); point DIFFKIT_STORE or --store at a new file")
        self.readonly = False
        if not {"meta", "studies", "cells", "refs", "claims"} <= tables:
            try:
                with self._write():
                    for statement in filter(str.strip, _SCHEMA.split(";")):
                        self.conn.execute(statement)
                    self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                    self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('created_by', ?)", (f"diffkit {__version__}",))
            except StoreError:
                if not {"meta", "studies", "cells", "refs"} <= tables:
                    raise
                self.readonly = True  # an older, read-only store: it can still be read
        found = int(self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0])
        if found != SCHEMA_VERSION:
            raise StoreError(f"{self.path} was written with results-store schema version {found}, and this diffkit "
                             f"reads version {SCHEMA_VERSION}; rerun the studies into a new store (move the file "
                             f"aside, or set DIFFKIT_STORE / --store to another path)")

    def close(self) -> None:
        self.conn.close()

    @contextlib.contextmanager
    def _write(self):
        """One write transaction, taken up front (BEGIN IMMEDIATE): its reads and writes are atomic."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as err:
            raise self._write_error(err) from None
        try:
            yield self.conn
        except sqlite3.OperationalError as err:
            self.conn.rollback()
            raise self._write_error(err) from None
        except BaseException:
            self.conn.rollback()
            raise
        else:
            try:
                self.conn.commit()
            except sqlite3.OperationalError as err:
                raise self._write_error(err) from None

    def _write_error(self, err: Exception) -> StoreError:
        if "readonly" in str(err) or "read-only" in str(err):
            return StoreError(f"cannot write the results store {self.path}: it is read-only ({err}); make it "
                              f"writable (and its folder), or give another store with --store / DIFFKIT_STORE")
        return StoreError(f"cannot write the results store {self.path}: {err}")

    # --- studies and cells ---
    def begin(self, study: str, study_hash: str, source: str, *, fresh: bool) -> None:
        """Open ``study`` for writing: check its hash, or start over with ``fresh`` (one transaction)."""
        with self._write():
            if fresh:
                self.conn.execute("DELETE FROM cells WHERE study=?", (study,))
                self.conn.execute("DELETE FROM studies WHERE study=?", (study,))
                self.conn.execute("DELETE FROM claims WHERE study=?", (study,))
            row = self.conn.execute("SELECT study_hash, source FROM studies WHERE study=?", (study,)).fetchone()
            if row is None:
                self.conn.execute("INSERT INTO studies VALUES (?, ?, ?, ?)", (study, study_hash, source, now()))
            elif row[0] != study_hash:
                raise StoreError(
                    f"{self.path} holds results of study {study!r} from a different study file (hash {row[0]}, "
                    f"from {row[1]}); this file has hash {study_hash}. Its cells would not be comparable: rerun "
                    f"with --fresh (fresh=True) to discard the old results, or use another store")

    def claim(self, study: str, cell_id: str, stale_after_s: float) -> str | None:
        """Claim a cell for this run: None if claimed, else why not ('done', or the owner computing it).

        A claim is taken over when its owner's process has ended (same host) or after ``stale_after_s``.
        """
        with self._write():
            status = self.conn.execute("SELECT status FROM cells WHERE study=? AND cell_id=?",
                                       (study, cell_id)).fetchone()
            if status is not None and status[0] in FINAL_STATUSES:
                return "done"
            row = self.conn.execute("SELECT owner, claimed_at FROM claims WHERE study=? AND cell_id=?",
                                    (study, cell_id)).fetchone()
            if row is not None and row[0] != self.owner and not _stale(row[0], row[1], stale_after_s):
                return row[0]
            self.conn.execute("INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?)",
                              (study, cell_id, self.owner, time.time()))
        return None

    def release(self, study: str, cell_id: str) -> None:
        with self._write():
            self.conn.execute("DELETE FROM claims WHERE study=? AND cell_id=? AND owner=?", (study, cell_id, self.owner))

    def statuses(self, study: str) -> dict[str, str]:
        return dict(self.conn.execute("SELECT cell_id, status FROM cells WHERE study=?", (study,)))

    def record(self, study: str, cell_id: str, status: str, rows: list[dict]) -> None:
        """Write one cell's rows in one transaction (replacing an earlier record of the same cell).

        Values shared by every row (the environment, the study hash ...) are stored once per cell.
        """
        rows = [{k: _clean(v) for k, v in r.items()} for r in rows]
        common = {k: v for k, v in rows[0].items() if all(k in r and r[k] == v for r in rows[1:])} if rows else {}
        text = dumps({"common": common, "rows": [{k: v for k, v in r.items() if k not in common} for r in rows]})
        with self._write():
            self.conn.execute("INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?, ?)",
                              (study, cell_id, status, text, now()))
            self.conn.execute("DELETE FROM claims WHERE study=? AND cell_id=? AND owner=?", (study, cell_id, self.owner))

    def rows(self, study: str) -> list[dict]:
        out = []
        for (text,) in self.conn.execute("SELECT rows FROM cells WHERE study=? ORDER BY rowid", (study,)):
            record = json.loads(text)
            out.extend({**record["common"], **r} for r in record["rows"])
        return out

    def studies(self) -> dict[str, dict]:
        """Stored studies: {name: {hash, source, cells, statuses}}."""
        out = {}
        for study, h, source, created in self.conn.execute("SELECT * FROM studies ORDER BY study"):
            counts = dict(self.conn.execute("SELECT status, COUNT(*) FROM cells WHERE study=? GROUP BY status",
                                            (study,)))
            out[study] = {"hash": h, "source": source, "created_at": created, "statuses": counts}
        return out

    # --- the reference cache ---
    def get_reference(self, problem_key: str, digits: int):
        row = self.conn.execute("SELECT value, grad, certification, digits FROM refs WHERE problem_key=?",
                                (problem_key,)).fetchone()
        if row is None or row[3] < digits:
            return None
        return row[0], json.loads(row[1]), json.loads(row[2]) if row[2] else None

    def put_reference(self, problem_key: str, P: int, digits: int, value: str, grad: list[str], cert) -> None:
        with self._write():
            self.conn.execute("INSERT OR REPLACE INTO refs VALUES (?, ?, ?, ?, ?, ?)",
                              (problem_key, P, digits, value, json.dumps(grad), dumps(cert) if cert else None))


FINAL_STATUSES = ("ok", "failed", "budget")  # a rerun keeps these cells (see runner.FINAL)


def _stale(owner: str, claimed_at: float, stale_after_s: float) -> bool:
    host, pid = (owner.split(":") + ["", ""])[:2]
    if time.time() - claimed_at > stale_after_s:
        return True
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            return False
    return False


def _make_parent(path: Path) -> None:
    """Create the store's folder, or say which part of the path is in the way."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in (path.parent, *path.parent.parents) if p.exists() and not p.is_dir()), path.parent)
        raise StoreError(f"cannot create the results store {path}: {blocker} is a file, not a folder; move it or "
                         f"choose another --store / DIFFKIT_STORE") from None
    except PermissionError as err:
        raise StoreError(f"cannot create the folder {path.parent} for the results store {path}: {err.strerror}; "
                         f"choose a folder you may write to (--store / DIFFKIT_STORE)") from None


def export(df, path) -> Path:
    """Write a results DataFrame to ``.csv`` or ``.parquet`` (Parquet needs pyarrow)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise StoreError("writing Parquet needs pyarrow (pip install pyarrow); or export to .csv") from None
        df.to_parquet(path, index=False)
    elif path.suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        raise StoreError(f"unknown export format {path.suffix!r} for {path}; use .csv or .parquet")
    return path
