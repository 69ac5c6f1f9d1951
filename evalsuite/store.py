"""The DuckDB store: schema, the one writer's atomic job commits, and lock-tolerant reads.

DuckDB lets one process hold a database file for writing, and a process that holds it open
blocks every other process, readers included. So nobody keeps a connection open: a sweep
connects for each job's single transaction and closes, and readers (`evalsuite ls`, export, the
dashboard) open read-only, copy what they need into pandas and close, retrying for a while when
the other side holds the lock. A job's run, scores and samples land in one transaction, so a
sweep killed at any moment leaves no partial job behind.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from evalsuite.errors import EvalsuiteError
from evalsuite.paths import DEFAULT_DB
from evalsuite.records import JobKey, JobRecord, Run, Sample, Score, Sweep, WorkerState, as_tuple, columns

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, source VARCHAR NOT NULL, model VARCHAR NOT NULL, step INTEGER,
    backend VARCHAR, model_source VARCHAR, model_commit VARCHAR, data_source VARCHAR, doc_limit INTEGER,
    dtype VARCHAR, batch_size VARCHAR, device VARCHAR, gpu_name VARCHAR, hostname VARCHAR,
    evalsuite_commit VARCHAR, lm_eval_version VARCHAR, transformers_version VARCHAR,
    torch_version VARCHAR, started_at TIMESTAMP, finished_at TIMESTAMP, duration_s DOUBLE
);
CREATE TABLE IF NOT EXISTS scores (
    model VARCHAR NOT NULL, step INTEGER, tokens BIGINT, task VARCHAR NOT NULL,
    metric VARCHAR NOT NULL, shots INTEGER NOT NULL, value DOUBLE, stderr DOUBLE, n INTEGER,
    doc_limit INTEGER, dtype VARCHAR, run_id VARCHAR NOT NULL, source VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS sweeps (
    sweep_id VARCHAR PRIMARY KEY, models VARCHAR, planned INTEGER, done INTEGER, status VARCHAR,
    started_at TIMESTAMP, updated_at TIMESTAMP, hostname VARCHAR
);
CREATE TABLE IF NOT EXISTS workers (
    sweep_id VARCHAR NOT NULL, worker INTEGER NOT NULL, state VARCHAR, node VARCHAR, node_id VARCHAR,
    gpu VARCHAR, pid INTEGER, model VARCHAR, step INTEGER, done INTEGER, updated_at TIMESTAMP,
    PRIMARY KEY (sweep_id, worker)
);
CREATE TABLE IF NOT EXISTS samples (
    run_id VARCHAR NOT NULL, model VARCHAR NOT NULL, step INTEGER, task VARCHAR NOT NULL,
    shots INTEGER NOT NULL, doc_id INTEGER NOT NULL, target INTEGER, correct BOOLEAN,
    correct_norm BOOLEAN, loglikelihoods DOUBLE[], is_greedy BOOLEAN[]
);
"""
# Columns added after the first release: a store made before them gains them on the next init.
MIGRATIONS = """
ALTER TABLE runs ADD COLUMN IF NOT EXISTS model_commit VARCHAR;
"""

LOCK_WAIT_S = 60.0  # how long to wait for the other process's lock before giving up


def db_path(path: str | Path | None = None) -> Path:
    """--db, else $EVALSUITE_DB, else results/evalsuite.duckdb."""
    return Path(path or os.environ.get("EVALSUITE_DB") or DEFAULT_DB)


def _is_lock_error(exc: Exception) -> bool:
    return "lock" in str(exc).lower()


@contextmanager
def connect(path: Path, read_only: bool = False, wait_s: float = LOCK_WAIT_S):
    """A short-lived connection, retried while another process holds the file's lock."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.Error as exc:
            if _is_lock_error(exc) and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            raise EvalsuiteError(f"cannot open store {path}: {_first_line(exc)}") from None
    try:
        yield con
    finally:
        con.close()


def init(path: Path, seed: bool = True) -> Path:
    """Create the store (and its folder) if needed; a clear error if the path is unwritable.

    A new store is seeded with EleutherAI's published scores (results/published.csv), in the
    same transaction, so the dashboard has real curves before any run; seed=False skips that.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EvalsuiteError(f"cannot create store folder {path.parent}: {exc.strerror}") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise EvalsuiteError(f"store {path} is not writable")
    if not os.access(path.parent, os.W_OK):
        raise EvalsuiteError(f"store folder {path.parent} is not writable")
    with connect(path) as con:
        con.begin()  # closing without commit (a failed seed) rolls the whole creation back
        fresh = not con.execute("SELECT count(*) FROM information_schema.tables "
                                "WHERE table_name = 'scores'").fetchone()[0]
        con.execute(SCHEMA)
        con.execute(MIGRATIONS)
        if fresh and seed:
            from evalsuite.reference import seed_store

            seed_store(con)
        con.commit()
    return path


def stored_tasks(path: Path, key: JobKey) -> set[str]:
    """Tasks already stored for this key (empty if the store does not exist yet)."""
    return stored_tasks_by_step(path, key).get(key.step, set())


def stored_tasks_by_step(path: Path, key: JobKey) -> dict[int | None, set[str]]:
    """{step: tasks stored} for the key's model and settings, every step at once (key.step unused)."""
    if not path.exists():
        return {}
    with connect(path, read_only=True) as con:
        rows = con.execute(
            "SELECT DISTINCT step, task FROM scores WHERE model = ? AND shots = ? AND source = ? "
            "AND doc_limit IS NOT DISTINCT FROM ? AND dtype IS NOT DISTINCT FROM ?",
            [key.model, key.shots, key.source, key.doc_limit, key.dtype]).fetchall()
    stored: dict[int | None, set[str]] = {}
    for step, task in rows:
        stored.setdefault(step, set()).add(task)
    return stored


def write_job(path: Path, record: JobRecord, replace: bool = False, sweep_id: str | None = None) -> list[str]:
    """Commit one job atomically and return the tasks written.

    With replace, rows stored earlier under the same key are deleted first (--force); without
    it, tasks another writer stored in the meantime are dropped, so nothing is double-counted.
    The sweep's progress counter moves in the same transaction.
    """
    with connect(path) as con:
        con.begin()
        try:
            written = _write(con, record, replace)
            if sweep_id:
                con.execute("UPDATE sweeps SET done = done + 1, updated_at = ? WHERE sweep_id = ?",
                            [utcnow(), sweep_id]).fetchall()
            con.commit()
        except BaseException:
            con.rollback()
            raise
    return written


def write_jobs(path: Path, jobs: list[tuple[JobKey, Run, list[Score], list[Sample]]]) -> list[list[str]]:
    """Commit many jobs in one transaction and return, per job, the tasks written.

    For `evalsuite import`: hundreds of small files, where a connection, key queries and
    inserts per file would cost most of the time. As write_job without replace: tasks already
    stored under a job's key (or written by an earlier job of the batch) are left alone.
    """
    with connect(path) as con:
        con.begin()
        try:
            stored = set(con.execute("SELECT DISTINCT model, step, shots, source, task, doc_limit, "
                                     "dtype FROM scores").fetchall())
            written = [_new_tasks(stored, key, scores) for key, _, scores, _ in jobs]
            picked = [(job, tasks) for job, tasks in zip(jobs, written) if tasks]
            _insert(con, "runs", columns(Run), [as_tuple(job[1]) for job, _ in picked])
            for table, index, record in (("scores", 2, Score), ("samples", 3, Sample)):
                rows = [as_tuple(r) for job, tasks in picked for r in job[index] if r.task in tasks]
                _insert(con, table, columns(record), rows)
            con.commit()
        except BaseException:
            con.rollback()
            raise
    return written


def _new_tasks(stored: set, key: JobKey, scores: list[Score]) -> list[str]:
    """Tasks of a job not yet in `stored` (the scores' distinct keys), which it then joins."""
    row = (key.model, key.step, key.shots, key.source, None, key.doc_limit, key.dtype)
    tasks = sorted({s.task for s in scores if row[:4] + (s.task,) + row[5:] not in stored})
    stored.update((key.model, key.step, key.shots, key.source, t, key.doc_limit, key.dtype) for t in tasks)
    return tasks


def _write(con, record: JobRecord, replace: bool) -> list[str]:
    key = record.key
    where = ("model = ? AND step IS NOT DISTINCT FROM ? AND shots = ? AND source = ? AND task = ? "
             "AND doc_limit IS NOT DISTINCT FROM ? AND dtype IS NOT DISTINCT FROM ?")
    written = []
    for task in sorted({s.task for s in record.scores}):
        args = [key.model, key.step, key.shots, key.source, task, key.doc_limit, key.dtype]
        exists = con.execute(f"SELECT count(*) FROM scores WHERE {where}", args).fetchall()[0][0]
        if exists and not replace:
            continue
        if exists:
            con.execute(f"DELETE FROM samples WHERE run_id IN (SELECT run_id FROM scores WHERE {where}) "
                        "AND task = ?", args + [task]).fetchall()
            con.execute(f"DELETE FROM scores WHERE {where}", args).fetchall()
        written.append(task)
    if not written:
        return written
    _insert(con, "runs", columns(Run), [as_tuple(record.run)])
    _insert(con, "scores", columns(Score), [as_tuple(s) for s in record.scores if s.task in written])
    _insert_samples(con, [s for s in record.samples if s.task in written])
    return written


def _insert(con, table: str, cols: list[str], rows: list[tuple]) -> None:
    # A DataFrame insert: executemany is row-at-a-time and far too slow for many rows.
    import pandas as pd

    if rows:
        frame = pd.DataFrame(rows, columns=cols)
        con.register("incoming", frame)
        con.execute(f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(cols)} FROM incoming").fetchall()
        con.unregister("incoming")


def _insert_samples(con, samples: list[Sample]) -> None:
    """A checkpoint's samples (11,634 for the five full tasks) in one columnar Arrow insert:
    building pandas rows of Python lists costs more than the insert itself."""
    import pyarrow as pa

    if not samples:
        return
    cols = columns(Sample)
    schema = pa.schema([
        ("run_id", pa.string()), ("model", pa.string()), ("step", pa.int32()), ("task", pa.string()),
        ("shots", pa.int32()), ("doc_id", pa.int32()), ("target", pa.int32()),
        ("correct", pa.bool_()), ("correct_norm", pa.bool_()),
        ("loglikelihoods", pa.list_(pa.float64())), ("is_greedy", pa.list_(pa.bool_()))])
    table = pa.table({c: [getattr(s, c) for s in samples] for c in cols}, schema=schema)
    con.register("incoming_samples", table)
    con.execute(f"INSERT INTO samples ({', '.join(cols)}) SELECT {', '.join(cols)} "
                "FROM incoming_samples").fetchall()
    con.unregister("incoming_samples")


def utcnow() -> datetime:
    """Naive UTC, as every timestamp in the store."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def start_sweep(path: Path, sweep: Sweep) -> None:
    with connect(path) as con:
        _insert(con, "sweeps", columns(Sweep), [as_tuple(sweep)])


def end_sweep(path: Path, sweep_id: str, status: str) -> None:
    with connect(path) as con:
        con.execute("UPDATE sweeps SET status = ?, updated_at = ? WHERE sweep_id = ?",
                    [status, utcnow(), sweep_id]).fetchall()


def set_worker(path: Path, worker: WorkerState) -> None:
    """Record a Ray sweep's worker as its driver sees it now (one row per worker, replaced)."""
    with connect(path) as con:
        con.execute(f"INSERT OR REPLACE INTO workers ({', '.join(columns(WorkerState))}) "
                    f"VALUES ({', '.join('?' for _ in columns(WorkerState))})", list(as_tuple(worker))).fetchall()


def scores_where(models: list[str] | None = None, tasks: list[str] | None = None,
                 source: str | None = None) -> tuple[str, list]:
    """A `WHERE ...` clause and its parameters selecting scores (empty when nothing is asked)."""
    clauses, params = [], []
    for column, values in (("model", models), ("task", tasks)):
        if values:
            clauses.append(f"{column} IN ({', '.join('?' for _ in values)})")
            params += values
    if source:
        clauses.append("source = ?")
        params.append(source)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params


def read_df(path: Path, sql: str, params: list | None = None):
    """Run a read-only query and return a pandas DataFrame (empty store: a clear error)."""
    if not path.exists():
        raise EvalsuiteError(f"no store at {path}: run 'evalsuite run' or 'evalsuite import' first")
    with connect(path, read_only=True) as con:
        return con.execute(sql, params or []).df()


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0]
