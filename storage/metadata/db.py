"""One database connection for every repository: the place that knows it is SQLite.

Repositories write portable SQL (`?` placeholders, ON CONFLICT DO NOTHING, RETURNING) and call only
`transaction`, `query`, `execute` and `executemany`, so a PostgreSQL `Database` with the same methods
(translating the placeholders) can replace this one without touching them.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from picsort_local.errors import DatabaseUnavailableError

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000  # how long a statement waits for another process's lock

Params = Sequence[Any]


T = TypeVar("T")


def now() -> str:
    """Timestamps are ISO 8601 text in UTC, to the second (sortable as text)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def marks(n: int) -> str:
    """`?, ?, ...` for an IN list of n values."""
    return ",".join("?" * n)


# Values per IN list: under every SQLite's parameter limit (999 before 3.32, 32,766 since) and
# PostgreSQL's 65,535, with room for a few more parameters in the statement.
MAX_IN = 900


def in_chunks(values: Sequence[T]) -> Iterator[Sequence[T]]:
    """`values` in slices of at most MAX_IN, for IN lists of any length."""
    for start in range(0, len(values), MAX_IN):
        yield values[start:start + MAX_IN]


class ConstraintError(Exception):
    """A uniqueness, foreign-key or NOT NULL constraint refused a write (whatever the database)."""


class Database:
    """Thread-safe access to one SQLite file (one connection, serialised by a re-entrant lock; SQLite
    allows one writer at a time anyway, and WAL lets other processes read meanwhile). Statements run
    in autocommit unless inside `transaction()`; the lock is held for the whole transaction, so reads
    by the same thread inside it see its writes."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None,
                                     timeout=BUSY_TIMEOUT_MS / 1000)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        # Deleted rows are overwritten with zeros (in their pages and in freed pages), so what a guest
        # or host deletes cannot be read back from the file. Compile-time defaults differ (Debian: on).
        self._conn.execute("PRAGMA secure_delete=ON")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """BEGIN IMMEDIATE (the write lock is taken up front, so two writers never deadlock on an
        upgrade) ... COMMIT, or ROLLBACK on any exception."""
        with self._lock:
            with _constraints():
                self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self
                with _constraints():
                    self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:  # a failed COMMIT must not leave the connection inside it
                    self._conn.execute("ROLLBACK")
                raise

    def query(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """Every row of a statement (also INSERT ... RETURNING)."""
        with self._lock, _constraints():
            return list(self._conn.execute(sql, params).fetchall())

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns how many rows it changed."""
        with self._lock, _constraints():
            return int(self._conn.execute(sql, params).rowcount)

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        with self._lock, _constraints():
            self._conn.executemany(sql, rows)

    def scrub(self) -> None:
        """After deleting personal data: copy the WAL into the database and truncate it. Until then the
        WAL still holds older copies of the pages, with the deleted rows in them.

        The delete has committed by then: a checkpoint that cannot run now is logged, never raised, and
        waits at most a second for other processes (every metadata call waits on this lock meanwhile)."""
        busy = 1
        with self._lock:
            try:
                self._conn.execute("PRAGMA busy_timeout=1000")
                busy = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            except sqlite3.Error as exc:
                logger.warning("WAL checkpoint after a delete failed: %s", exc)
            finally:
                self._conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        if busy:  # another process is reading; the next checkpoints overwrite the WAL anyway
            logger.warning("could not truncate the WAL of %s after a delete (database busy)", self.path)


@contextmanager
def _constraints() -> Iterator[None]:
    """SQLite's errors as database-neutral ones: a constraint failure is a `ConstraintError`, a
    database that cannot answer (locked past the busy timeout, I/O) a `DatabaseUnavailableError`."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        raise ConstraintError(str(exc)) from exc
    except sqlite3.OperationalError as exc:
        if _transient(exc):
            raise DatabaseUnavailableError(f"metadata database: {exc}") from exc
        raise  # a programming error (no such table, too many variables...) is not "try again later"


# SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN (primary result codes).
_TRANSIENT_CODES = {5, 6, 10, 13, 14}
_TRANSIENT_WORDS = ("locked", "busy", "disk i/o", "disk is full", "unable to open")


def _transient(exc: sqlite3.OperationalError) -> bool:
    """A database that cannot answer now (another process holds it, the disk fails), by SQLite's result
    code (Python 3.11+) or its message (3.10)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (int(code) & 0xFF) in _TRANSIENT_CODES
    return any(word in str(exc).lower() for word in _TRANSIENT_WORDS)
