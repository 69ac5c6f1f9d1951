"""Regenerating the shipped reference data (results/published.csv, published_runs.csv) from
EleutherAI's raw published files in data/pythia-published, with `evalsuite import` itself:

    python -m evalsuite.io.reference

The raw files are imported into a scratch store with source 'published' (named explicitly: an
import is 'local' unless told otherwise), then its rows are written as two sorted CSV files (plain
text, so a regeneration shows up as a readable diff). store/seed.py reads them into new stores.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from evalsuite.catalog.tasks import load_tasks
from evalsuite.errors import EvalsuiteError
from evalsuite.io.importer import ImportReport, import_paths
from evalsuite.paths import PUBLISHED_RAW_DIR
from evalsuite.store import connect, sql_path
from evalsuite.store.seed import RUN_COLUMNS, RUNS_CSV, SCORE_COLUMNS, SCORES_CSV, SOURCE


def _export(con, sql: str, path: Path) -> None:
    con.execute(f"COPY ({sql}) TO {sql_path(path)} (HEADER, DELIMITER ',')")


def build(raw_dir: Path = PUBLISHED_RAW_DIR, scores_csv: Path = SCORES_CSV,
          runs_csv: Path = RUNS_CSV) -> ImportReport:
    """Import the raw published files into a scratch store and write the two CSV files."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "reference.duckdb"
        # the five tasks of tasks.yaml: what every new store starts with (the files hold dozens more)
        report = import_paths([raw_dir], db, source=SOURCE, seed=False, tasks=list(load_tasks().tasks))
        if report.skipped:
            path, reason = report.skipped[0]
            raise EvalsuiteError(f"{len(report.skipped)} published files failed, e.g. {path}: {reason}")
        order = "model, shots, step NULLS FIRST"
        with connect(db) as con:
            _export(con, f"SELECT {', '.join(SCORE_COLUMNS)} FROM scores ORDER BY {order}, task, metric",
                    scores_csv)
            _export(con, f"SELECT {', '.join(RUN_COLUMNS)} FROM runs "
                    "ORDER BY model, step NULLS FIRST, run_id", runs_csv)
    return report


def main() -> int:
    report = build()
    print(f"wrote {SCORES_CSV} ({report.scores} scores) and {RUNS_CSV} "
          f"({len(report.imported)} runs) from {PUBLISHED_RAW_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
