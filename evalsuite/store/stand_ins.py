"""What a reader's SQL sees in place of today's sample tables, whichever evalsuite wrote the store.

Queries over samples name three placeholders, which `fill` replaces for the store at hand:

- `SAMPLES`: the samples, with a `fingerprint_id` column naming the document each was scored on;
- `FINGERPRINTS`: (fingerprint_id, fingerprint), the text each number stands for;
- `DOCUMENTS`: the documents table, or no rows in a store made before documents were kept.

A store made by today's evalsuite (or brought up to date by `store.init`) gets its own tables. A
store no evalsuite of today has written is read as it is, since readers open it read-only:
- its samples hold the fingerprint's text (2026-12-06 to 12-07): the text stands for the number;
- they hold none (made before fingerprints): every fingerprint_id is NULL, and a reader takes any
  document of the sample's doc_id (which one it was scored on is not known).
"""

from __future__ import annotations

from evalsuite.store.db import has_table

TODAY = {"SAMPLES": "samples", "FINGERPRINTS": "fingerprints"}
FINGERPRINT_TEXT = {"SAMPLES": "(SELECT * EXCLUDE (fingerprint), fingerprint AS fingerprint_id FROM samples)",
                    "FINGERPRINTS": "(SELECT DISTINCT fingerprint AS fingerprint_id, fingerprint FROM documents)"}
NO_FINGERPRINT = {"SAMPLES": "(SELECT *, NULL::INTEGER AS fingerprint_id FROM samples)",
                  "FINGERPRINTS": "(SELECT NULL::INTEGER AS fingerprint_id, NULL::VARCHAR AS fingerprint WHERE false)"}
NO_DOCUMENTS = ("(SELECT NULL::VARCHAR AS task, NULL::INTEGER AS shots, NULL::INTEGER AS doc_id, "
                "NULL::VARCHAR AS fingerprint, NULL::INTEGER AS target, NULL::VARCHAR[] AS choices WHERE false)")


def sample_columns(con) -> set[str]:
    """Which of `fingerprint` (its text, before it was interned) and `fingerprint_id` the samples
    table has: a store no evalsuite of today has written may have either, or neither."""
    return {c for (c,) in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'samples' "
        "AND column_name IN ('fingerprint', 'fingerprint_id')").fetchall()}


def fill(con, sql: str) -> str:
    """`sql` with SAMPLES, FINGERPRINTS and DOCUMENTS replaced by what this store (`con`) holds."""
    held = sample_columns(con)
    chosen = TODAY if "fingerprint_id" in held else FINGERPRINT_TEXT if "fingerprint" in held else NO_FINGERPRINT
    for placeholder, relation in chosen.items():
        sql = sql.replace(placeholder, relation)
    return sql.replace("DOCUMENTS", "documents" if has_table(con, "documents") else NO_DOCUMENTS)
