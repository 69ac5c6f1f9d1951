"""`evalsuite import`: lm-eval result files (0.3 and 0.4) into the store.

Reads lm-eval 0.3 files (EleutherAI's published Pythia, OPT and BLOOM results) and lm-eval 0.4
`results_*.json` files, with the `samples_<task>_<date>.jsonl` written beside them (each
document's outcome, and the document itself: its prompt, choices and answer). Which model,
step and shot count a file holds comes from its content (`config.model_args`: `pretrained=`,
`revision=`, read through the catalog by io/identity.py; `num_fewshot` / `n-shot`), never from its
name; what is known about the model is stored with its rows. Only the tasks of tasks.yaml
are imported. Each file becomes one run whose id hashes the file's bytes and the source, so
importing a file again changes nothing. Its source is 'local' unless --source says otherwise:
'published' is for EleutherAI's numbers and only ever comes from an explicit --source.

Result files are untrusted input. Each one is read only if it is a regular file under the size
limit, parsed strictly (no duplicate keys, no 300-digit numbers), and every row it would add is
checked (evalsuite.io.checks) before anything is written: a file is stored whole or skipped with one
line saying why, and a bad file never costs the good ones.

The reference data under results/ is built with this importer: see evalsuite/io/reference.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from evalsuite import names
from evalsuite.catalog.entries import Catalog
from evalsuite.errors import EvalsuiteError, first_line
from evalsuite.io.files import MAX_FILE_MB, SkipFile, find_files, parse_json, read_file, read_json
from evalsuite.io.identity import Identity, identify, make_run, run_id_for
from evalsuite.records import JobRecord

BATCH_ROWS = 200_000  # score + sample rows held in memory before they are written


@dataclass
class ImportReport:
    imported: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)  # already in the store
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    scores: int = 0
    samples: int = 0
    db: Path | None = None  # the store written to

    def summary(self) -> str:
        extra = [f"{len(self.unchanged)} already stored"] if self.unchanged else []
        extra += [f"{len(self.skipped)} skipped"] if self.skipped else []
        files = "file" if len(self.imported) == 1 else "files"
        return (f"imported {len(self.imported)} {files} ({self.scores} scores, {self.samples} samples) "
                f"into {self.db}" + (f"; {', '.join(extra)}" if extra else ""))

    def exit_status(self) -> int:
        """0 when every file was imported or already stored, 1 when some were skipped, 2 when all were."""
        if not self.skipped:
            return 0
        return 1 if self.imported or self.unchanged else 2


def _our_tasks(suite) -> dict[str, str]:
    """{task name in a file: its tasks.yaml name}: lm-eval's names and tasks.yaml's own."""
    by_name = {spec.lm_eval_task: spec.name for spec in suite.tasks.values()}
    by_name.update({name: name for name in suite.tasks})
    return by_name


def _select(metrics, suite) -> list:
    """Only the tasks of tasks.yaml, under their tasks.yaml names."""
    by_name = _our_tasks(suite)
    return [replace(m, task=by_name[m.task]) for m in metrics if m.task in by_name]


def _samples(path: Path, tasks: set[str], ident: Identity, shots: int, run_id: str,
             max_mb: float) -> tuple[list, list]:
    """The per-document samples lm-eval 0.4 wrote beside results_<date>.json, where present, and
    the documents they describe."""
    from evalsuite.lmeval.results import parse_documents, parse_samples

    date = path.stem.removeprefix("results_")
    docs = {}
    for task in sorted(tasks):
        file = path.with_name(f"samples_{task}_{date}.jsonl")
        if path.stem.startswith("results_") and file.is_file():
            try:
                lines = read_file(file, max_mb).split(b"\n")
                docs[task] = [parse_json(line) for line in lines if line.strip()]
            except SkipFile as exc:
                raise SkipFile(f"{names.printable(file.name)}: {exc}") from None
    try:
        return (parse_samples(docs, model=ident.model, step=ident.step, shots=shots, run_id=run_id),
                parse_documents(docs, shots=shots))
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as exc:
        raise SkipFile(f"samples file has an unexpected shape ({type(exc).__name__}: "
                       f"{names.printable(exc)[:200]})") from None


def load_file(path: Path, suite, source: str | None = None, model: str | None = None,
              step: int | None = None, max_mb: float = MAX_FILE_MB, catalog: Catalog | None = None):
    """One result file -> its JobRecord (run, scores, samples), every row checked, or SkipFile saying why not."""
    from evalsuite.io.checks import BadRow, check_job
    from evalsuite.lmeval.results import parse_results, to_scores

    raw, data = read_json(path, max_mb)
    try:
        metrics = _select(parse_results(raw, set(_our_tasks(suite))), suite)  # others are not read
    except (ValueError, TypeError, AttributeError) as exc:
        raise SkipFile(names.printable(exc) if isinstance(exc, ValueError) else "not an lm-eval results file") from None
    if not metrics:
        raise SkipFile(f"none of the tasks of tasks.yaml ({', '.join(suite.tasks)}) is in it")
    shots = {m.shots for m in metrics}
    if len(shots) > 1:
        raise SkipFile(f"tasks with different shot counts {sorted(shots)} in one file")
    ident = identify(raw, model, step, catalog)
    source = source or "local"  # never 'published' by default: that name is EleutherAI's numbers
    run = make_run(raw, ident, run_id_for(data, source), source)
    scores = to_scores(metrics, model=ident.model, step=ident.step, tokens=ident.tokens, run_id=run.run_id,
                       source=source, doc_limit=run.doc_limit, dtype=run.dtype)
    samples, documents = _samples(path, {m.task for m in metrics}, ident, shots.pop(), run.run_id, max_mb)
    try:
        check_job(run, scores, samples, documents)
    except BadRow as exc:
        raise SkipFile(str(exc)) from None
    return JobRecord(run, scores[0].shots, scores, samples, documents=documents, model=ident.about)


def _stored_run_ids(db: Path) -> set[str]:
    from evalsuite.store import read_df

    return set(read_df(db, "SELECT run_id FROM runs")["run_id"])


def import_paths(paths: list[str | Path], db: Path, source: str | None = None,
                 model: str | None = None, step: int | None = None, on_skip=None,
                 seed: bool = True, max_file_mb: float = MAX_FILE_MB,
                 catalog: Catalog | None = None) -> ImportReport:
    """Import every result file under `paths`; a file that fails is reported, the rest go on.

    A store that cannot be written (disk full, read-only) stops the import with an
    EvalsuiteError; every file stored before that is complete, and importing again adds the rest.
    """
    from evalsuite import store
    from evalsuite.catalog.entries import load_catalog
    from evalsuite.catalog.tasks import load_tasks

    source = names.check("source", source) if source is not None else None
    model = names.check("model", model) if model is not None else None
    files = find_files(paths)  # a path that does not exist is reported as a skipped file
    if not files:
        raise EvalsuiteError(f"no result files (*.json) under {', '.join(map(str, paths))}")
    suite, report, batch = load_tasks(), ImportReport(), []
    catalog = catalog or load_catalog()
    store.init(db, seed=seed)
    known = _stored_run_ids(db)

    def skip(path: Path, reason: str) -> None:
        report.skipped.append((path, reason))
        if on_skip:
            on_skip(path, reason)

    for path in files:
        try:
            job = load_file(path, suite, source, model, step, max_file_mb, catalog)
        except SkipFile as exc:
            skip(path, str(exc))
            continue
        if job.run.run_id in known:  # this very file (same bytes, same source) is stored
            report.unchanged.append(path)
            continue
        known.add(job.run.run_id)
        batch.append((path, job))
        if sum(len(j.scores) + len(j.samples) for _, j in batch) >= BATCH_ROWS:
            _flush(db, batch, report, skip)
    _flush(db, batch, report, skip)
    return report


def _flush(db: Path, batch: list, report: ImportReport, skip) -> None:
    """Write the batch in one transaction; a file whose every task is stored already is unchanged.

    Every row was checked before, so an insert should not fail on data; if one does anyway, the
    batch is written again file by file so that only the file at fault is skipped.
    """
    from evalsuite.store import write_jobs

    if not batch:
        return
    try:
        try:
            written = write_jobs(db, [job for _, job in batch])
        except EvalsuiteError:
            raise
        except Exception:  # noqa: BLE001 - find the file at fault
            for path, job in batch:
                _write_alone(db, path, job, report, skip)
        else:
            for (path, job), tasks in zip(batch, written):
                _count(report, path, job, tasks)
    except EvalsuiteError as exc:  # the store itself failed (disk full, read-only, corrupt)
        raise _stopped(exc, report) from None
    batch.clear()


def _write_alone(db: Path, path: Path, job, report: ImportReport, skip) -> None:
    from evalsuite.store import write_jobs

    try:
        tasks = write_jobs(db, [job])[0]
    except EvalsuiteError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever DuckDB refused, it is this file's
        skip(path, f"the store refused it ({type(exc).__name__}: {names.printable(first_line(exc))[:200]})")
        return
    _count(report, path, job, tasks)


def _count(report: ImportReport, path: Path, job, tasks: list[str]) -> None:
    """One written file: imported, or unchanged when every task of it was stored already."""
    if not tasks:
        report.unchanged.append(path)
        return
    report.imported.append(path)
    report.scores += sum(s.task in tasks for s in job.scores)
    report.samples += sum(s.task in tasks for s in job.samples)


def _stopped(exc: EvalsuiteError, report: ImportReport) -> EvalsuiteError:
    stored = len(report.imported)
    return EvalsuiteError(f"{exc}; import stopped after storing {stored} complete "
                          f"file{'s' if stored != 1 else ''} (importing again adds the rest)")


def import_from_args(args, on_skip: Callable[[Path, str], None]) -> ImportReport:
    """`evalsuite import`: check the arguments, import, report (`on_skip` hears each skipped file)."""
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
                          on_skip=on_skip, max_file_mb=max_file_mb, catalog=load_catalog(args.models_file))
    return replace(report, db=db)
