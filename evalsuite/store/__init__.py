"""The DuckDB store: one file, one writer at a time, readers beside it.

    schema.py    tables derived from the records (records.py); migrations for older stores
    db.py        connections, the transaction helper, named errors, read-only queries
    writes.py    one job per transaction (never partial, never double-counted); documents; sweeps
    queries.py   what is stored under a key; score filters; which run stands for a checkpoint
    items.py     per-document training dynamics: learned_at, flips, margins, difficulty by scale
    metrics.py   each per-document metric as SQL: acc, acc_norm; p_correct, bpb from loglikelihoods
    values.py    a metric per document and per checkpoint, with the run standing for each checkpoint
    means.py     p_correct and bpb per run, stored whenever samples or documents are written
    stand_ins.py what SQL over samples reads in a store an older evalsuite wrote (read as it is)
    seed.py      the shipped published scores, seeded into every new store

The names below are the store's API; callers use `from evalsuite import store` and `store.X`.
"""

from __future__ import annotations

import os
from pathlib import Path

from evalsuite.errors import EvalsuiteError
from evalsuite.records import JobKey
from evalsuite.store.db import (
    LOCK_WAIT_S,
    LOCKED,
    PROBLEMS,
    StoreLocked,
    connect,
    db_path,
    existing,
    held,
    lock_wait_s,
    patience,
    problem,
    read_df,
    sql_path,
    transaction,
    utcnow,
)
from evalsuite.store.queries import (
    known_models,
    scores_where,
    scores_with_representative,
    stored_tasks,
    stored_tasks_by_step,
)
from evalsuite.store.schema import create_all, migrate
from evalsuite.store.seed import seed_models, seed_store
from evalsuite.store.writes import (
    end_sweep,
    insert,
    note_sweep,
    set_worker,
    start_sweep,
    write_documents,
    write_job,
    write_jobs,
    write_models,
)

__all__ = ["EvalsuiteError", "JobKey", "LOCK_WAIT_S", "LOCKED", "PROBLEMS", "StoreLocked", "connect", "db_path",
           "end_sweep", "existing", "held", "init", "insert", "known_models", "lock_wait_s", "note_sweep", "patience",
           "problem",
           "read_df", "scores_where", "scores_with_representative", "readable",
           "set_worker", "sql_path", "start_sweep", "stored_tasks", "stored_tasks_by_step", "transaction", "utcnow",
           "write_documents", "write_job", "write_jobs", "write_models"]


def init(path: Path, seed: bool = True) -> Path:
    """Create the store (and its folder) if needed; a clear error if the path is unwritable.

    A new store is seeded with EleutherAI's published scores (results/published.csv), in the
    same transaction, so the dashboard has real curves before any run; seed=False skips that.
    Every store gets the built-in catalog's models (the models table) when it first lacks them.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EvalsuiteError(f"cannot create store folder {path.parent}: {exc.strerror}") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise EvalsuiteError(f"store {path} is not writable")
    if not os.access(path.parent, os.W_OK):
        raise EvalsuiteError(f"store folder {path.parent} is not writable")
    with transaction(path) as con:  # a failed seed rolls the whole creation back
        tables = {t for (t,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        fresh = "scores" not in tables
        if fresh and tables:  # someone else's DuckDB database: adding our tables to it would be wrong
            raise EvalsuiteError(f"cannot write store {path}: not an evalsuite store (a DuckDB "
                                 "database with other tables); pick another --db")
        con.execute(create_all())
        migrate(con, tables)
        if "models" not in tables:  # a new store, or one made before models were kept
            seed_models(con, older_store=not fresh)
        if fresh and seed:
            seed_store(con)
    return path


def readable(db: str | Path | None) -> Path:
    """The store a reading command (stats, compare) reads. A store named with --db or $EVALSUITE_DB
    must exist (a mistyped path is an error, not a new file); the default store is created on first
    use, seeded with EleutherAI's published numbers, so statistics work out of the box."""
    path = db_path(db)
    if path.exists() or db or os.environ.get("EVALSUITE_DB"):
        return existing(path)
    init(path)
    return path
