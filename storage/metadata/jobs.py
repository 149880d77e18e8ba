"""Ingest jobs: the one record of a job's progress and outcome (it outlives the process that ran it)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from picsort_local.errors import NotFoundError
from storage.metadata.db import Database, marks, now
from storage.metadata.rows import JobRow

ACTIVE = ("queued", "running")


class JobRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, job_id: str, event_id: str, total: int, *, status: str = "running") -> JobRow:
        stamp = now()
        with self.db.transaction() as db:
            db.execute(
                "INSERT INTO ingest_jobs (id, event_id, status, total, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (job_id, event_id, status, total, stamp, stamp))
        return JobRow(job_id, event_id, status, total, 0, 0, (), stamp, stamp)

    def update(self, job_id: str, *, done: int, failed: int, status: str = "running",
               errors: Sequence[tuple[str, str]] | None = None) -> None:
        """Progress and outcome; `errors` (file name, reason) replace the stored ones when given. A job
        whose event was deleted meanwhile is gone: updating it does nothing."""
        with self.db.transaction() as db:
            if errors is None:
                db.execute("UPDATE ingest_jobs SET done = ?, failed = ?, status = ?, updated_at = ?"
                           " WHERE id = ?", (done, failed, status, now(), job_id))
            else:
                db.execute("UPDATE ingest_jobs SET done = ?, failed = ?, status = ?, errors_json = ?,"
                           " updated_at = ? WHERE id = ?",
                           (done, failed, status, json.dumps([list(e) for e in errors]), now(), job_id))

    def get(self, job_id: str) -> JobRow:
        rows = self.db.query("SELECT * FROM ingest_jobs WHERE id = ?", (job_id,))
        if not rows:
            raise NotFoundError(f"no ingest job {job_id!r}")
        return _job(rows[0])

    def active(self) -> list[JobRow]:
        """Jobs queued or running (or left so by a process that stopped), oldest first."""
        rows = self.db.query(
            f"SELECT * FROM ingest_jobs WHERE status IN ({marks(len(ACTIVE))}) ORDER BY created_at, id",
            ACTIVE)
        return [_job(r) for r in rows]


def _job(row: sqlite3.Row) -> JobRow:
    errors = tuple((str(name), str(reason)) for name, reason in json.loads(row["errors_json"]))
    return JobRow(row["id"], row["event_id"], row["status"], int(row["total"]), int(row["done"]),
                  int(row["failed"]), errors, row["created_at"], row["updated_at"])
