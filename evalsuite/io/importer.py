"""`evalsuite import`: lm-eval result files (0.3 and 0.4) into the store; the orchestration.

Reads lm-eval 0.3 files (EleutherAI's published Pythia, OPT and BLOOM results), lm-eval 0.4
`results_*.json` files with the `samples_<task>_<date>.jsonl` written beside them (each
document's outcome, and the document itself), and the files `evalsuite export --format lm-eval`
writes. Which model, step and shot count a file holds comes from its content, never from its
name (io/identity.py); each file is read and checked by io/load.py (its samples by io/samples.py).
Every task of a file is stored; whatever is left out (a task, a samples file, a .jsonl no results
file reads) is named with the reason. Each file becomes one run per shot count whose id hashes
the file's bytes and the source, so importing a file again changes nothing. Its source is 'local'
unless --source (or the block of a file evalsuite exported) says otherwise: 'published' is for
EleutherAI's numbers and only ever comes from an explicit --source.

Result files are untrusted input: a file is stored whole or skipped with one line saying why, and
a bad file never costs the good ones. Files are written in batches of at most FLUSH_BYTES read,
so memory stays a small multiple of the largest file whatever the number of files. A Ctrl-C
stops the import with a line saying which files were stored (each whole, in its transaction).

The reference data under results/ is built with this importer: see evalsuite/io/reference.py.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from evalsuite import names
from evalsuite.catalog.entries import Catalog
from evalsuite.errors import EvalsuiteError, first_line
from evalsuite.io.files import MAX_FILE_MB, SkipFile, find_files
from evalsuite.io.load import LoadOptions, load_file

# Bytes of files read (results and samples) held as records before they are written: the batch,
# not the number of files, bounds memory (benchmarks/bench_import.py)
FLUSH_BYTES = 16 * 2**20


class ImportInterrupted(KeyboardInterrupt):
    """Ctrl-C during an import; the message says what was stored."""


# Set by a Ctrl-C during an import: DuckDB turns one that arrives while it executes into an error
# of its own (InterruptException, or a RuntimeError "Query interrupted" while it reads Arrow
# data), which must stop the import, never be taken for a bad file (issue 20, item 8)
_SIGINT = threading.Event()


@contextmanager
def _noting_sigint():
    """Ctrl-C raises KeyboardInterrupt as usual, and is noted in _SIGINT (main thread only)."""
    _SIGINT.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def noted(signum, frame):
        _SIGINT.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, noted)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@dataclass
class ImportReport:
    imported: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)  # already in the store
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    left_out: list[tuple[Path, str]] = field(default_factory=list)  # a task, a samples file, a stray .jsonl
    scores: int = 0
    samples: int = 0
    db: Path | None = None  # the store written to
    counted: set[str] = field(default_factory=set, repr=False)  # run ids written and counted above

    def summary(self) -> str:
        extra = [f"{len(self.unchanged)} already stored"] if self.unchanged else []
        extra += [f"{len(self.skipped)} skipped"] if self.skipped else []
        extra += [f"{len(self.left_out)} notes on what was left out or renamed (above)"] if self.left_out else []
        files = "file" if len(self.imported) == 1 else "files"
        return (f"imported {len(self.imported)} {files} ({self.scores} scores, {self.samples} samples) "
                f"into {self.db}" + (f"; {', '.join(extra)}" if extra else ""))

    def exit_status(self) -> int:
        """0 when every file was imported or already stored, 1 when some were skipped, 2 when all were."""
        if not self.skipped:
            return 0
        return 1 if self.imported or self.unchanged else 2

    def stored(self) -> str:
        """What is in the store so far (for a stop): each file named here is there whole."""
        done = len(self.imported)
        return (f"{done} file{'s' if done != 1 else ''} stored whole before the stop ({self.scores} scores, "
                f"{self.samples} samples), nothing of the others; importing again adds the rest")


def _stored_run_ids(db: Path) -> set[str]:
    from evalsuite.store import read_df

    return set(read_df(db, "SELECT run_id FROM runs")["run_id"])


def import_paths(paths: list[str | Path], db: Path, source: str | None = None,
                 model: str | None = None, step: int | None = None, on_skip=None,
                 seed: bool = True, max_file_mb: float = MAX_FILE_MB,
                 catalog: Catalog | None = None, on_note=None, tasks: list[str] | None = None) -> ImportReport:
    """Import every result file under `paths`; a file that fails is reported (`on_skip`), the
    rest go on; whatever is left out of a stored file is reported too (`on_note`). `tasks`: only
    these (tasks.yaml's names, or a file's own); default every task.

    A store that cannot be written (disk full, read-only) stops the import with an
    EvalsuiteError, and a Ctrl-C with ImportInterrupted; every file stored before either is
    complete, and importing again adds the rest.
    """
    from evalsuite import store
    from evalsuite.catalog.entries import load_catalog
    from evalsuite.catalog.tasks import load_tasks

    source = names.check("source", source) if source is not None else None
    model = names.check("model", model) if model is not None else None
    files = find_files(paths)  # a path that does not exist is reported as a skipped file
    if not files:
        raise EvalsuiteError(f"no result files (*.json) under {', '.join(map(str, paths))}")
    opts = LoadOptions(load_tasks(), catalog or load_catalog(), source, model, step, max_file_mb,
                       frozenset(tasks) if tasks is not None else None)
    report = ImportReport()
    store.init(db, seed=seed)

    def skip(path: Path, reason: str) -> None:
        report.skipped.append((path, reason))
        if on_skip:
            on_skip(path, reason)

    def note(path: Path, line: str) -> None:
        report.left_out.append((path, line))
        if on_note:
            on_note(path, line)

    try:
        with _noting_sigint():
            read = _import_files(files, db, opts, report, skip, note)
    except KeyboardInterrupt:
        raise ImportInterrupted(report.stored()) from None
    for path in find_files(paths, suffix=".jsonl"):
        if path not in read and path not in files:
            note(path, "left out: no results_<date>.json beside it names it as its samples file "
                       "(samples_<task>_<date>.jsonl of a task it holds)")
    return report


def _import_files(files: list[Path], db: Path, opts: LoadOptions, report: ImportReport, skip, note) -> set[Path]:
    """Read, check and write every file, in batches of at most FLUSH_BYTES read; returns the
    samples files the results files account for."""
    known, batch, held = _stored_run_ids(db), [], 0
    samples_files: set[Path] = set()
    for path in files:
        try:
            loaded = load_file(path, opts)
        except SkipFile as exc:
            skip(path, str(exc))
            # its samples files go with it, not named again as read by no results file
            samples_files.update(path.parent.glob(f"samples_*_{path.stem.removeprefix('results_')}.jsonl"))
            continue
        samples_files.update(loaded.samples_files)
        for line in loaded.notes:
            note(path, line)
        new = [job for job in loaded.jobs if job.run.run_id not in known]
        if not new:  # this very file (same bytes, same source) is stored
            report.unchanged.append(path)
            continue
        known.update(job.run.run_id for job in new)
        batch += [(path, job) for job in new]
        held += loaded.size
        if held >= FLUSH_BYTES:
            _flush(db, batch, report, skip)
            held = 0
    _flush(db, batch, report, skip)
    return samples_files


def _flush(db: Path, batch: list, report: ImportReport, skip) -> None:
    """Write the batch in one transaction; a file whose every task is stored already is unchanged.

    Every row was checked before, so an insert should not fail on data; if one does anyway, the
    batch is written again file by file so that only the file at fault is skipped. A Ctrl-C
    while DuckDB writes (its InterruptException) stops the import, never taken for a bad file.
    """
    import duckdb

    if not batch:
        return
    try:
        _write_batch(db, batch, report, skip)
    except (KeyboardInterrupt, duckdb.InterruptException):
        _reconcile(db, batch, report)  # a stop may land just after a commit: count what is stored
        raise KeyboardInterrupt from None
    except EvalsuiteError as exc:  # the store itself failed (disk full, read-only, corrupt)
        raise _stopped(exc, report) from None
    batch.clear()


def _write_batch(db: Path, batch: list, report: ImportReport, skip) -> None:
    import duckdb

    from evalsuite.store import write_jobs

    try:
        written = write_jobs(db, [job for _, job in batch])
    except (EvalsuiteError, duckdb.InterruptException):
        raise
    except Exception:  # noqa: BLE001 - find the file at fault
        if _SIGINT.is_set():  # DuckDB turned the Ctrl-C into an error of its own
            raise KeyboardInterrupt from None
        for path, job in batch:
            _write_alone(db, path, job, report, skip)
    else:
        for (path, job), tasks in zip(batch, written):
            _count(report, path, job, tasks)


def _reconcile(db: Path, batch: list, report: ImportReport) -> None:
    """After a stop: the batch's jobs the store holds (committed before the stop took effect),
    counted as imported, so the line after a Ctrl-C says what is really stored."""
    stored = _stored_run_ids(db)
    for path, job in batch:
        if job.run.run_id in stored and job.run.run_id not in report.counted:
            _count(report, path, job, sorted({s.task for s in job.scores}))


def _write_alone(db: Path, path: Path, job, report: ImportReport, skip) -> None:
    import duckdb

    from evalsuite.store import write_jobs

    try:
        tasks = write_jobs(db, [job])[0]
    except (EvalsuiteError, duckdb.InterruptException):
        raise
    except Exception as exc:  # noqa: BLE001 - whatever DuckDB refused, it is this file's
        skip(path, f"the store refused it ({type(exc).__name__}: {names.printable(first_line(exc))[:200]})")
        return
    _count(report, path, job, tasks)


def _count(report: ImportReport, path: Path, job, tasks: list[str]) -> None:
    """One written file: imported, or unchanged when every task of it was stored already."""
    report.counted.add(job.run.run_id)
    if not tasks:
        if path not in report.unchanged[-1:] and path not in report.imported[-1:]:
            report.unchanged.append(path)
        return
    if path not in report.imported[-1:]:  # a file of several shot counts: one job each, in a row
        report.imported.append(path)
    report.scores += sum(s.task in tasks for s in job.scores)
    report.samples += sum(s.task in tasks for s in job.samples)


def _stopped(exc: EvalsuiteError, report: ImportReport) -> EvalsuiteError:
    stored = len(report.imported)
    return EvalsuiteError(f"{exc}; import stopped after storing {stored} complete "
                          f"file{'s' if stored != 1 else ''} (importing again adds the rest)")


def import_from_args(args, on_skip: Callable[[Path, str], None],
                     on_note: Callable[[Path, str], None] | None = None) -> ImportReport:
    """`evalsuite import`: check the arguments, import, report (`on_skip` hears each skipped
    file, `on_note` each thing left out of a stored one)."""
    from evalsuite.store import db_path

    if args.step is not None and args.step < 0:
        raise EvalsuiteError(f"bad --step {args.step}: steps are not negative")
    if args.source is not None and not args.source.strip():
        raise EvalsuiteError("--source is empty: give a name such as 'my-lab'")
    max_file_mb = MAX_FILE_MB if args.max_file_mb is None else args.max_file_mb
    if not 0 < max_file_mb < 2**20:
        raise EvalsuiteError(f"bad --max-file-mb {args.max_file_mb}: give a size in MB above 0")
    db = db_path(args.db)
    from evalsuite.catalog.entries import load_catalog

    report = import_paths(args.paths, db, source=args.source, model=args.model, step=args.step,
                          on_skip=on_skip, max_file_mb=max_file_mb, catalog=load_catalog(args.models_file),
                          on_note=on_note)
    return replace(report, db=db)
