"""Reading the store: what is stored under a key, score filters, and which run stands for a
checkpoint. Everything here is a read-only query through db.read_df / db.connect."""

from __future__ import annotations

from pathlib import Path

from evalsuite.records import JobKey, Model, columns
from evalsuite.store.db import connect, read_df
from evalsuite.store.seed import shipped_run_ids


def known_models(path: Path) -> dict[str, Model]:
    """What the store keeps about each model (its models table; empty for a store made before
    models were kept)."""
    frame = read_df(path, "SELECT * FROM models", needs="models", columns=tuple(columns(Model)))
    rows = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    return {row["model"]: Model(**row) for row in rows}


def stored_tasks(path: Path, key: JobKey) -> set[str]:
    """Tasks already stored for this key (empty if the store does not exist yet)."""
    return stored_tasks_by_step(path, key).get(key.step, set())


def stored_tasks_by_step(path: Path, key: JobKey) -> dict[int | None, set[str]]:
    """{step: tasks stored} for the key's model and settings, every step at once (key.step unused)."""
    if not path.exists():
        return {}
    where, params = key.where(every_step=True)
    with connect(path, read_only=True) as con:
        rows = con.execute(f"SELECT DISTINCT step, task FROM scores WHERE {where}", params).fetchall()
    stored: dict[int | None, set[str]] = {}
    for step, task in rows:
        stored.setdefault(step, set()).add(task)
    return stored


def scores_where(models: list[str] | None = None, tasks: list[str] | None = None,
                 source: str | None = None, rows: str = "", runs: str = "") -> tuple[str, list]:
    """A `WHERE ...` clause and its parameters selecting scores (empty when nothing is asked).
    `rows` and `runs` qualify the columns ("s.", "r.") where samples are joined with their runs."""
    clauses, params = [], []
    for column, values in ((f"{rows}model", models), (f"{rows}task", tasks)):
        if values:
            clauses.append(f"{column} IN ({', '.join('?' for _ in values)})")
            params += values
    if source:
        clauses.append(f"{runs or rows}source = ?")
        params.append(source)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params


def scores_with_representative() -> tuple[str, list]:
    """Every score, with `representative` true on the one row that stands for its checkpoint
    (model, step, source, task, metric, shots): the shipped published score where there is one
    (nothing imported later displaces EleutherAI's number, whatever it claims), else the run on
    the most documents (the full set over a --limit trial), then the run that finished last (as
    the Items view chooses: store/items.py)."""
    sql = """
        SELECT s.*, row_number() OVER (
            PARTITION BY s.model, s.step, s.source, s.task, s.metric, s.shots
            ORDER BY list_contains(?, s.run_id) DESC, s.doc_limit IS NULL DESC,
                     coalesce(s.n, -1) DESC, r.finished_at DESC NULLS LAST, s.run_id DESC) = 1 AS representative
        FROM scores s LEFT JOIN runs r USING (run_id)"""
    return sql, [sorted(shipped_run_ids())]
