"""Writing the store: one job (a checkpoint, or an imported file) per transaction, never a
partial one, never a double count, with what is known about its model; the documents a sweep
evaluates, once; and the sweeps' progress rows.

Every insert is columnar (an Arrow table built from the records, schema.py's types): DuckDB's
row-at-a-time paths cost more than the insert itself for a checkpoint's 11,634 samples.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from evalsuite.records import Document, JobKey, JobRecord, Model, Run, Sample, Score, Sweep, WorkerState, columns
from evalsuite.store import means
from evalsuite.store.db import connect, transaction, utcnow
from evalsuite.store.schema import TABLES, arrow_schema, column_name


def write_job(path: Path, record: JobRecord, replace: bool = False, sweep_id: str | None = None) -> list[str]:
    """Commit one job atomically and return the tasks written.

    With replace, rows stored earlier under the same key are deleted first (--force); without
    it, tasks another writer stored in the meantime are dropped, so nothing is double-counted.
    The sweep's progress counter moves in the same transaction.
    """
    with transaction(path) as con:
        written = _write(con, record, replace)
        if sweep_id:
            con.execute("UPDATE sweeps SET done = done + 1, updated_at = ? WHERE sweep_id = ?",
                        [utcnow(), sweep_id]).fetchall()
    return written


def write_jobs(path: Path, records: list[JobRecord]) -> list[list[str]]:
    """Commit many jobs in one transaction and return, per job, the tasks written.

    For `evalsuite import`: hundreds of small files, where a connection, key queries and
    inserts per file would cost most of the time. As write_job without replace: tasks already
    stored under a job's key (or written by an earlier job of the batch) are left alone.
    """
    with transaction(path) as con:
        stored = set(con.execute("SELECT DISTINCT model, step, shots, source, task, doc_limit, "
                                 "dtype FROM scores").fetchall())
        written = [_new_tasks(stored, record.key, record.scores) for record in records]
        picked = [(record, set(tasks)) for record, tasks in zip(records, written) if tasks]
        insert(con, Run, [record.run for record, _ in picked])
        insert(con, Score, [s for record, tasks in picked for s in record.scores if s.task in tasks])
        insert(con, Sample, [s for record, tasks in picked for s in record.samples if s.task in tasks])
        gained = _insert_documents(con, [d for record, tasks in picked for d in record.documents if d.task in tasks])
        write_models(con, [record.model for record, _ in picked if record.model])
        _refresh(con, [record.run.run_id for record, _ in picked if record.samples], gained)
    return written


def write_documents(path: Path, documents: list[Document]) -> int:
    """Store the documents a sweep evaluates (once per sweep, before its jobs); those already
    stored are left alone. Returns how many were new."""
    with transaction(path) as con:
        gained = _insert_documents(con, documents)
        _refresh(con, [], gained)
        return sum(gained.values())


# How many documents each task and shot count has.
_DOCUMENT_COUNTS = "SELECT task, shots, count(*) FROM documents GROUP BY task, shots"


def _insert_documents(con, documents: list[Document]) -> dict[tuple[str, int], int]:
    """Store the documents not stored yet; returns how many each task and shot count gained."""
    if not documents:
        return {}
    before = {(t, s): n for t, s, n in con.execute(_DOCUMENT_COUNTS).fetchall()}
    insert(con, Document, documents, on_key="skip")
    return {(t, s): n - before.get((t, s), 0) for t, s, n in con.execute(_DOCUMENT_COUNTS).fetchall()
            if n != before.get((t, s))}


def _refresh(con, run_ids: list[str], gained: dict[tuple[str, int], int]) -> None:
    """Work out again, in one pass, the means of these runs and of every run with samples of a task
    and shot count that gained documents (means.py: bpb needs a document's text, p_correct may need
    its right answer); a job's own run is often both."""
    where: list[str] = []
    params: dict[str, list] = {}
    if run_ids:  # IN, a hash join: list_contains over a full suite's samples took 0.09 s, this 0.02 to 0.04
        where.append("run_id IN (SELECT unnest($runs))")
        params["runs"] = sorted(set(run_ids))
    if gained:
        where.append("list_contains($pairs, [task, shots::VARCHAR])")
        params["pairs"] = [[t, str(s)] for t, s in sorted(gained)]
    if where:
        means.refresh(con, " OR ".join(where), params)


def _new_tasks(stored: set, key: JobKey, scores: list[Score]) -> list[str]:
    """Tasks of a job not yet in `stored` (the scores' distinct keys), which it then joins."""
    def row(task: str) -> tuple:
        return (key.model, key.step, key.shots, key.source, task, key.doc_limit, key.dtype)

    tasks = sorted({s.task for s in scores if row(s.task) not in stored})
    stored.update(row(t) for t in tasks)
    return tasks


def _write(con, record: JobRecord, replace: bool) -> list[str]:
    written, replaced = [], set()
    for task in sorted({s.task for s in record.scores}):
        where, params = record.key.where(task)
        runs = {r for (r,) in con.execute(f"SELECT DISTINCT run_id FROM scores WHERE {where}", params).fetchall()}
        if runs and not replace:
            continue
        if runs:
            con.execute(f"DELETE FROM samples WHERE task = ? AND run_id IN "
                        f"(SELECT run_id FROM scores WHERE {where})", [task, *params]).fetchall()
            con.execute(f"DELETE FROM scores WHERE {where}", params).fetchall()
            replaced |= runs
        written.append(task)
    if replaced:  # a run whose every score was replaced is gone too, not left as an empty row
        marks = ", ".join("?" for _ in replaced)
        con.execute(f"DELETE FROM runs WHERE run_id IN ({marks}) AND run_id NOT IN "
                    "(SELECT run_id FROM scores)", sorted(replaced)).fetchall()
    gained: dict[tuple[str, int], int] = {}
    if written:
        insert(con, Run, [record.run])
        insert(con, Score, [s for s in record.scores if s.task in written])
        insert(con, Sample, [s for s in record.samples if s.task in written])
        gained = _insert_documents(con, [d for d in record.documents if d.task in written])
        write_models(con, [record.model] if record.model else [])
    _refresh(con, sorted(replaced) + ([record.run.run_id] if written and record.samples else []), gained)
    return written


# A model's row keeps every fact it has: a newer description replaces what it says, and what it
# does not know (None, family 'other') leaves the stored fact alone.
_MERGE = ", ".join(
    ["family = CASE WHEN excluded.family = 'other' THEN models.family ELSE excluded.family END"]
    + [f"{c} = coalesce(excluded.{c}, models.{c})" for c in columns(Model) if c not in ("model", "family")])


def write_models(con, models: list[Model]) -> None:
    """Store what is known about these models, through an open transaction (merged as _MERGE says;
    several descriptions of one model in the list are merged in order)."""
    merged: dict[str, Model] = {}
    for model in models:
        old = merged.get(model.model)
        merged[model.model] = model if old is None else Model(**{
            c: (getattr(model, c) if getattr(model, c) not in (None, "other") else getattr(old, c))
            for c in columns(Model)})
    insert(con, Model, list(merged.values()), on_key="merge")


TABLE_OF = {record_type: name for name, record_type in TABLES.items()}
# What an insert does with a row whose primary key is stored already (or repeated in the rows):
VERBS = {"fail": "INSERT",
         "skip": "INSERT OR IGNORE",  # documents: every checkpoint's file describes them again
         "replace": "INSERT OR REPLACE",  # a Ray worker's state: the latest counts
         "merge": "INSERT"}  # models: ON CONFLICT merges the facts (_MERGE)


def insert(con, record_type: type, records: list, on_key: str = "fail") -> None:
    """Insert records of one type into their table through one columnar Arrow table; `on_key`
    says what a row whose primary key is stored already does (VERBS). An interned field's values
    (schema.py) are stored as their numbers."""
    import pyarrow as pa

    if not records:
        return
    values = {}
    for f in fields(record_type):
        column = [getattr(r, f.name) for r in records]
        if f.metadata.get("interned"):
            column = intern(con, f.metadata["interned"], f.name, column)
        values[column_name(f)] = column
    table = pa.table(values, schema=arrow_schema(record_type))
    cols = list(values)
    con.register("incoming", table)
    verb = VERBS[on_key]
    merge = f" ON CONFLICT ({cols[0]}) DO UPDATE SET {_MERGE}" if on_key == "merge" else ""
    con.execute(f"{verb} INTO {TABLE_OF[record_type]} ({', '.join(cols)}) "
                f"SELECT {', '.join(cols)} FROM incoming{merge}").fetchall()
    # not in a `finally`: after a failed insert the transaction is aborted and unregistering
    # would raise, hiding the real error; the connection, and the registration, close anyway
    con.unregister("incoming")


def intern(con, table: str, name: str, values: list[str | None]) -> list[int | None]:
    """Each value's number in `table` (columns `<name>_id`, `<name>`); values not stored yet are
    stored, numbered after the last in the order they come (a sweep's documents' order, which
    keeps the samples' numbers close and cheap to store). None stays None."""
    import pyarrow as pa

    wanted = list(dict.fromkeys(v for v in values if v is not None))
    if not wanted:
        return [None] * len(values)
    con.register("wanted", pa.table({name: pa.array(wanted, pa.string())}))
    numbers = dict(con.execute(f"SELECT {name}, {name}_id FROM {table} SEMI JOIN wanted USING ({name})").fetchall())
    con.unregister("wanted")
    (last,), = con.execute(f"SELECT coalesce(max({name}_id), 0) FROM {table}").fetchall()
    new = [v for v in wanted if v not in numbers]
    numbers.update((v, last + i) for i, v in enumerate(new, start=1))
    insert(con, TABLES[table], [TABLES[table](numbers[v], v) for v in new])
    return [None if v is None else numbers[v] for v in values]


def start_sweep(path: Path, sweep: Sweep) -> None:
    with transaction(path) as con:
        insert(con, Sweep, [sweep])


def set_worker(path: Path, worker: WorkerState) -> None:
    """Record a Ray sweep's worker as its driver sees it now (one row per worker, replaced)."""
    with transaction(path) as con:
        insert(con, WorkerState, [worker], on_key="replace")


def note_sweep(path: Path, sweep_id: str, planned: int, note: str | None) -> None:
    """A watched sweep's plan grows as checkpoints appear; its note says what it waits for.
    updated_at is left alone: it is when the last checkpoint was stored (the dashboard's pace)."""
    with connect(path) as con:
        con.execute("UPDATE sweeps SET planned = ?, note = ? WHERE sweep_id = ?",
                    [planned, note, sweep_id]).fetchall()


def end_sweep(path: Path, sweep_id: str, status: str) -> None:
    with connect(path) as con:
        con.execute("UPDATE sweeps SET status = ?, updated_at = ? WHERE sweep_id = ?",
                    [status, utcnow(), sweep_id]).fetchall()
