"""The built-in reference data: EleutherAI's published scores, shipped as CSV, seeded into new stores.

Two sorted CSV files under results/ (plain text, so a regeneration shows up as a readable diff):
`published.csv`, one row per score (model, step, shots, task, metric, value, stderr, ...), and
`published_runs.csv`, one provenance row per published file (its run id, the checkpoint it names,
batch size, device, lm-eval version). They hold the five tasks of tasks.yaml for the 16 Pythia
models at every published checkpoint, zero- and five-shot, and the OPT and BLOOM baselines.

They are generated from the raw files in data/pythia-published by `evalsuite import` itself:

    python -m evalsuite.io.reference

(imports the raw files into a scratch store with source 'published', named explicitly: an import
is 'local' unless told otherwise, then exports its rows).
Seeding reads them with DuckDB's CSV reader in one bulk insert; nothing heavy is imported here.
"""

from __future__ import annotations

import csv
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

from evalsuite.errors import EvalsuiteError
from evalsuite.paths import PUBLISHED_RAW_DIR, RESULTS_DIR
from evalsuite.catalog.pythia import TOKENS_PER_STEP

SCORES_CSV = RESULTS_DIR / "published.csv"
RUNS_CSV = RESULTS_DIR / "published_runs.csv"
SOURCE = "published"

SCORE_TYPES = {"model": "VARCHAR", "step": "INTEGER", "shots": "INTEGER", "task": "VARCHAR",
               "metric": "VARCHAR", "value": "DOUBLE", "stderr": "DOUBLE", "n": "INTEGER",
               "doc_limit": "INTEGER", "dtype": "VARCHAR", "run_id": "VARCHAR"}
RUN_TYPES = {"run_id": "VARCHAR", "source": "VARCHAR", "model": "VARCHAR", "step": "INTEGER",
             "backend": "VARCHAR", "model_source": "VARCHAR", "doc_limit": "INTEGER",
             "dtype": "VARCHAR", "batch_size": "VARCHAR", "device": "VARCHAR",
             "lm_eval_version": "VARCHAR"}


def _read_csv(path: Path, types: dict[str, str]) -> str:
    columns = ", ".join(f"'{name}': '{kind}'" for name, kind in types.items())
    quoted = str(path).replace("'", "''")
    return f"read_csv('{quoted}', header = true, columns = {{{columns}}}, nullstr = '')"


def seed_store(con, scores_csv: Path = SCORES_CSV, runs_csv: Path = RUNS_CSV) -> None:
    """Insert the reference rows through an open connection (store.init calls this)."""
    for path in (scores_csv, runs_csv):
        if not path.is_file():
            raise EvalsuiteError(f"reference data {path} is missing; regenerate it with "
                                 "'python -m evalsuite.io.reference'")
    run_cols = ", ".join(RUN_TYPES)
    con.execute(f"INSERT INTO runs ({run_cols}) SELECT {run_cols} FROM {_read_csv(runs_csv, RUN_TYPES)}")
    con.execute(
        "INSERT INTO scores (model, step, tokens, task, metric, shots, value, stderr, n, doc_limit, "
        "dtype, run_id, source) "
        f"SELECT s.model, s.step, CAST(s.step AS BIGINT) * {TOKENS_PER_STEP}, s.task, s.metric, "
        "s.shots, s.value, s.stderr, s.n, s.doc_limit, s.dtype, s.run_id, r.source "
        f"FROM {_read_csv(scores_csv, SCORE_TYPES)} AS s JOIN runs AS r USING (run_id)")


@lru_cache(maxsize=1)
def shipped_run_ids(runs_csv: Path = RUNS_CSV) -> frozenset[str]:
    """The run ids of the shipped published files: the dashboard lets nothing displace these."""
    if not runs_csv.is_file():
        return frozenset()
    with runs_csv.open(newline="") as file:
        return frozenset(row["run_id"] for row in csv.DictReader(file))


def _export(con, sql: str, path: Path) -> None:
    quoted = str(path).replace("'", "''")
    con.execute(f"COPY ({sql}) TO '{quoted}' (HEADER, DELIMITER ',')")


def build(raw_dir: Path = PUBLISHED_RAW_DIR, scores_csv: Path = SCORES_CSV,
          runs_csv: Path = RUNS_CSV):
    """Import the raw published files into a scratch store and write the two CSV files."""
    from evalsuite.io.importer import import_paths
    from evalsuite.store import connect

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "reference.duckdb"
        report = import_paths([raw_dir], db, source=SOURCE, seed=False)
        if report.skipped:
            path, reason = report.skipped[0]
            raise EvalsuiteError(f"{len(report.skipped)} published files failed, e.g. {path}: {reason}")
        order = "model, shots, step NULLS FIRST"
        with connect(db) as con:
            _export(con, f"SELECT {', '.join(SCORE_TYPES)} FROM scores ORDER BY {order}, task, metric",
                    scores_csv)
            _export(con, f"SELECT {', '.join(RUN_TYPES)} FROM runs "
                    "ORDER BY model, step NULLS FIRST, run_id", runs_csv)
    return report


def main() -> int:
    report = build()
    print(f"wrote {SCORES_CSV} ({report.scores} scores) and {RUNS_CSV} "
          f"({len(report.imported)} runs) from {PUBLISHED_RAW_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
