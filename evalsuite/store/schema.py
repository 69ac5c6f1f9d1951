"""The store's tables, derived from the record dataclasses in records.py: one column per field, in
field order; its SQL type from the field's Python type (a field's `sql` metadata overrides it);
NOT NULL where the field is not optional; the primary keys named here (one column, or several). The Arrow schemas that
bulk inserts use come from the same place, so a field added to a record is a column everywhere.

A field with `interned` metadata (Sample.fingerprint) is stored as `<field>_id INTEGER`, the number
of its value in the table named there (`fingerprints`: fingerprint_id, fingerprint), each distinct
value stored once; writes.insert numbers new values, readers join that table where they need the text.
"""

from __future__ import annotations

import types
import typing
from dataclasses import fields
from datetime import datetime

from evalsuite.records import Document, Fingerprint, Model, Run, Sample, SampleMean, Score, Sweep, WorkerState
from evalsuite.store import means
from evalsuite.store.stand_ins import sample_columns

TABLES: dict[str, type] = {"runs": Run, "scores": Score, "sweeps": Sweep, "samples": Sample,
                           "documents": Document, "workers": WorkerState, "models": Model,
                           "fingerprints": Fingerprint, "sample_means": SampleMean}
# A document is stored once per task, shot count and content: the same doc_id of other data (a
# changed data set) is another row, and writers skip rows whose key is stored (writes.insert).
PRIMARY_KEYS: dict[str, tuple[str, ...]] = {"runs": ("run_id",), "sweeps": ("sweep_id",),
                                            "documents": ("task", "shots", "doc_id", "fingerprint"),
                                            "workers": ("sweep_id", "worker"), "models": ("model",),
                                            "fingerprints": ("fingerprint_id",),
                                            "sample_means": ("run_id", "task", "shots", "metric")}
SQL_TYPES = {str: "VARCHAR", int: "INTEGER", float: "DOUBLE", bool: "BOOLEAN", datetime: "TIMESTAMP"}

# Columns added after the first release: a store made before them gains them on the next init.
MIGRATIONS = """
ALTER TABLE runs ADD COLUMN IF NOT EXISTS model_commit VARCHAR;
ALTER TABLE sweeps ADD COLUMN IF NOT EXISTS note VARCHAR;
"""
# A store made before samples carried their document's fingerprint: each sample points at the
# one document stored for its (task, shots, doc_id); where several are (an import's other text),
# which one it was scored on is not known, and it stays None (readers then show every one).
BACKFILL_FINGERPRINTS = """
ALTER TABLE samples ADD COLUMN fingerprint VARCHAR;
UPDATE samples SET fingerprint = d.fingerprint
FROM (SELECT task, shots, doc_id, any_value(fingerprint) AS fingerprint FROM documents
      GROUP BY task, shots, doc_id HAVING count(*) = 1) d
WHERE samples.task = d.task AND samples.shots = d.shots AND samples.doc_id = d.doc_id;
"""
# A store whose samples held the fingerprint's text (2026-12-06 to 12-07): each distinct one is
# stored once (writes.intern numbers them, in the order first stored), then named by its number.
FIRST_STORED = ("SELECT fingerprint FROM samples WHERE fingerprint IS NOT NULL GROUP BY fingerprint "
                "ORDER BY min(rowid)")
NAME_BY_NUMBER = """
ALTER TABLE samples ADD COLUMN fingerprint_id INTEGER;
UPDATE samples SET fingerprint_id = f.fingerprint_id FROM fingerprints f WHERE samples.fingerprint = f.fingerprint;
ALTER TABLE samples DROP COLUMN fingerprint;
"""


def migrate(con, tables: set[str]) -> None:
    """Bring an older store's tables up to the records' columns (once: a later init finds them)."""
    con.execute(MIGRATIONS)
    if "samples" in tables and "fingerprint_id" not in sample_columns(con):
        _number_fingerprints(con, tables)
    if "samples" in tables and "sample_means" not in tables:
        means.refresh(con, "true", {})


def _number_fingerprints(con, tables: set[str]) -> None:
    if "fingerprint" not in sample_columns(con):
        if "documents" not in tables:
            con.execute("ALTER TABLE samples ADD COLUMN fingerprint VARCHAR")
        else:
            con.execute(BACKFILL_FINGERPRINTS).fetchall()
    from evalsuite.store.writes import intern  # writes builds on this module's tables

    intern(con, "fingerprints", "fingerprint", [f for (f,) in con.execute(FIRST_STORED).fetchall()])
    con.execute(NAME_BY_NUMBER).fetchall()


def _base(hint) -> tuple[object, bool]:
    """(the type without None, whether None is allowed) for `int | None`, `list[float]`, ..."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        kinds = [a for a in typing.get_args(hint) if a is not type(None)]
        return kinds[0], len(kinds) < len(typing.get_args(hint))
    return hint, False


def column_name(f) -> str:
    """A field's column: its name, or `<name>_id` for an interned one."""
    return f"{f.name}_id" if f.metadata.get("interned") else f.name


def column_types(record_type: type) -> dict[str, str]:
    """{column: SQL type} of a record's table, in field order."""
    hints = typing.get_type_hints(record_type)
    out = {}
    for f in fields(record_type):
        kind, _ = _base(hints[f.name])
        if f.metadata.get("interned"):
            out[column_name(f)] = "INTEGER"
        elif typing.get_origin(kind) is list:
            out[f.name] = SQL_TYPES[typing.get_args(kind)[0]] + "[]"
        else:
            out[f.name] = f.metadata.get("sql") or SQL_TYPES[typing.cast(type, kind)]
    return out


def create_statement(table: str) -> str:
    record_type = TABLES[table]
    hints = typing.get_type_hints(record_type)
    key = PRIMARY_KEYS.get(table, ())
    sql = column_types(record_type)
    cols = []
    for f in fields(record_type):
        name, optional = column_name(f), _base(hints[f.name])[1]
        constraint = " PRIMARY KEY" if key == (name,) else ("" if optional else " NOT NULL")
        cols.append(f"{name} {sql[name]}{constraint}")
    if len(key) > 1:
        cols.append(f"PRIMARY KEY ({', '.join(key)})")
    return f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(cols)});"


def create_all() -> str:
    return "\n".join(create_statement(table) for table in TABLES)


def arrow_schema(record_type: type):
    """The pyarrow schema of a record's rows, for bulk inserts."""
    import pyarrow as pa

    scalar = {"VARCHAR": pa.string(), "INTEGER": pa.int32(), "BIGINT": pa.int64(),
              "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_(), "TIMESTAMP": pa.timestamp("us")}
    return pa.schema([
        (name, pa.list_(scalar[sql[:-2]]) if sql.endswith("[]") else scalar[sql])
        for name, sql in column_types(record_type).items()])
