"""Opening the store: short-lived connections, one transaction helper, and named errors.

DuckDB lets one process hold a database file for writing, and a process that holds it open
blocks every other process, readers included. So nobody keeps a connection open: the one writer
(a sweep's committer, an import) connects for each transaction and closes, and readers (`ls`,
export, the dashboard) open read-only, copy what they need into pandas and close, retrying for
a while when the other side holds the lock; a burst of reads (a dashboard page) may share one
opening (held), for the burst only. A failure that is about the file itself (locked,
corrupt, truncated, not DuckDB, disk full, read-only) becomes one EvalsuiteError naming it.
"""

from __future__ import annotations

import os
import re
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from evalsuite.errors import EvalsuiteError, first_line
from evalsuite.paths import DEFAULT_DB

LOCK_WAIT_S = 60.0  # how long to wait for the other process's lock before giving up
LOCK_WAIT_ENV = "EVALSUITE_LOCK_WAIT_S"  # overrides it (tests wait seconds, not a minute)
_patience = threading.local()  # a thread's own wait (the committer's: short, it retries itself)
_holding = threading.local()  # the stores this thread holds open for a while (held())

# What a failure means, told by a phrase of DuckDB's own message (reproduced on real files in
# tests/test_store.py). Whole phrases, not words: the checksum message says "block", which a
# match on "lock" once took for a lock and waited 60 s on.
LOCKED = "Could not set lock on file"
PROBLEMS = {
    LOCKED: "another process holds its lock",
    "Corrupt database file": "the file is corrupt",
    "Could not read enough bytes": "the file is truncated or corrupt",
    "not a valid DuckDB database file": "not a DuckDB database",
    "Table with name": "not an evalsuite store (a table is missing)",
    "No space left on device": "the disk is full",
    "Read-only file system": "it is on a read-only file system",
    "Permission denied": "permission denied",
}


class StoreLocked(EvalsuiteError):
    """Another process holds the store's lock (a reader or a writer), past the wait."""

    def __init__(self, message: str, holder: str | None):
        super().__init__(message)
        self.holder = holder  # "PID 1234" as DuckDB names it, or None


def lock_wait_s() -> float:
    """How long a connection waits for another process's lock: this thread's own (`patience`),
    else $EVALSUITE_LOCK_WAIT_S, else LOCK_WAIT_S."""
    own = getattr(_patience, "seconds", None)
    if own is not None:
        return own
    try:
        return float(os.environ.get(LOCK_WAIT_ENV) or LOCK_WAIT_S)
    except ValueError:
        return LOCK_WAIT_S


@contextmanager
def patience(seconds: float):
    """Connections opened by this thread inside the block wait at most `seconds` for a lock."""
    before, _patience.seconds = getattr(_patience, "seconds", None), seconds
    try:
        yield
    finally:
        _patience.seconds = before


def lock_holder(exc: Exception) -> str | None:
    """Who holds the lock, as DuckDB's lock error names it ("PID 1234"), or None."""
    found = re.search(r"\(PID (\d+)\)", str(exc))
    return f"PID {found.group(1)}" if found else None


def db_path(path: str | Path | None = None) -> Path:
    """--db, else $EVALSUITE_DB, else results/evalsuite.duckdb."""
    return Path(path or os.environ.get("EVALSUITE_DB") or DEFAULT_DB)


def utcnow() -> datetime:
    """Naive UTC, as every timestamp in the store."""
    return datetime.now(UTC).replace(tzinfo=None)


def problem(exc: Exception) -> str | None:
    """What a DuckDB error says about the store file (PROBLEMS), or None for any other error."""
    text = str(exc)
    return next((meaning for phrase, meaning in PROBLEMS.items() if phrase in text), None)


@contextmanager
def connect(path: Path, read_only: bool = False, wait_s: float | None = None):
    """A short-lived connection, retried while another process holds the file's lock (for
    `wait_s`, default lock_wait_s(); past it, StoreLocked).

    A failure that is about the file (PROBLEMS), on opening or inside the block, becomes one
    EvalsuiteError naming it; other errors (a bad query, a NOT NULL violation) pass unchanged.
    """
    deadline = time.monotonic() + (lock_wait_s() if wait_s is None else wait_s)
    if read_only:
        _hold(path)
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.Error as exc:
            if LOCKED in str(exc) and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            meaning = problem(exc)
            message = f"cannot open store {path}: " + (f"{meaning} ({first_line(exc)})" if meaning
                                                       else first_line(exc))
            if LOCKED in str(exc):
                raise StoreLocked(message, lock_holder(exc)) from None
            raise EvalsuiteError(message) from None
    try:
        yield con
    except duckdb.Error as exc:
        meaning = problem(exc)
        if meaning is None:
            raise
        verb = "read" if read_only else "write"
        raise EvalsuiteError(f"cannot {verb} store {path}: {meaning} ({first_line(exc)})") from None
    finally:
        con.close()


@contextmanager
def held(path: Path):
    """Within the block, this thread's read-only connections to `path` share one open database
    (DuckDB keeps one per file while any connection to it is open), so a burst of queries reads
    the file's catalog and blocks once, not once per query: an Items page's seven queries on
    LAMBADA took 0.68 s one by one and 0.43 s inside one block (benchmarks/bench_items.py).

    It is opened at the block's first read (a block that reads nothing opens nothing) and closed
    when the block ends: meanwhile other processes cannot write (a sweep's committer waits, as it
    waits for any reader), so a block is one burst (a dashboard page), never kept open. Where the
    file cannot be opened (locked by a writer, not DuckDB) nothing is held: each query opens and
    reports the problem as before."""
    stores = _holding.__dict__.setdefault("stores", {})
    if str(path) in stores:  # an outer block holds it
        yield
        return
    stores[str(path)] = None
    try:
        yield
    finally:
        con = stores.pop(str(path))
        if con is not None:
            con.close()


def _hold(path: Path) -> None:
    """Open the database a held() block of this thread is waiting to hold, at its first read."""
    stores = getattr(_holding, "stores", {})
    if str(path) in stores and stores[str(path)] is None:
        try:
            stores[str(path)] = duckdb.connect(str(path), read_only=True)
        except duckdb.Error:
            pass  # the query's own connection waits or names the problem


@contextmanager
def transaction(path: Path):
    """A connection inside one transaction: committed when the block ends, rolled back (nothing
    written) when it raises, Ctrl-C included."""
    with connect(path) as con:
        con.begin()
        try:
            yield con
            con.commit()
        except BaseException:
            _rollback(con)
            raise


def _rollback(con) -> None:
    # A commit that fails (disk full) has already ended the transaction; rolling back again would
    # replace its error with "cannot rollback - no transaction is active".
    try:
        con.rollback()
    except duckdb.Error:
        pass


def existing(path: Path) -> Path:
    """`path`, where a store is; else the one-line error every reader gives."""
    if not path.exists():
        raise EvalsuiteError(f"no store at {path}: run 'evalsuite run' or 'evalsuite import' first")
    return path


def read_df(path: Path, sql: str, params: list | dict | None = None, needs: str | None = None,
            columns: tuple[str, ...] = ()):
    """Run a read-only query and return a pandas DataFrame (no store: a clear error). A query on
    a table that a store made by an older evalsuite lacks (`needs`) gives an empty frame with
    `columns` there; any other problem is raised, never taken for "nothing stored"."""
    with connect(existing(path), read_only=True) as con:
        if needs is not None and not has_table(con, needs):
            import pandas as pd

            return pd.DataFrame(columns=list(columns))
        return con.execute(sql, params or []).df()


def sql_path(path: Path) -> str:
    """A file path as a SQL string literal, for what DuckDB cannot take as a parameter (COPY TO,
    read_csv, SET temp_directory): quoted, its own quotes doubled."""
    return "'" + str(path).replace("'", "''") + "'"


def has_table(con, name: str) -> bool:
    """Whether the store has this table (an older store gets a newer one when next written)."""
    (found,), = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                            [name]).fetchall()
    return bool(found)


