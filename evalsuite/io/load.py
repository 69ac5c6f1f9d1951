"""One lm-eval results file (0.3 or 0.4, or one `evalsuite export` wrote) -> the jobs it adds to
the store, every row checked, or SkipFile saying why not.

Every task the file holds is kept, under its tasks.yaml name where tasks.yaml knows it (lm-eval
0.3's and 0.4's names of the five), else under its own; a task whose name or metrics evalsuite
cannot store is left out and named. A file with several shot counts becomes one job per shot
count. Its samples files come from io/samples.py; one that cannot be read costs only itself.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

from evalsuite import names
from evalsuite.catalog.entries import Catalog
from evalsuite.io.files import SkipFile, read_json
from evalsuite.io.identity import identify, make_run, run_id_for
from evalsuite.io.samples import SamplesOf, read_samples
from evalsuite.records import JobRecord


@dataclass(frozen=True)
class LoadOptions:
    """What `evalsuite import` says about every file: its source, a new model name, a step for
    files naming none, the size limit, the catalog and tasks.yaml's suite."""

    suite: object
    catalog: Catalog
    source: str | None = None
    model: str | None = None
    step: int | None = None
    max_mb: float = 100
    tasks: frozenset[str] | None = None  # only these (stored names); None: every task of a file


@dataclass
class Loaded:
    """One results file read: its jobs (one per shot count), the lines for the report, the
    samples files it accounts for, and the bytes read (the importer flushes by bytes)."""

    jobs: list[JobRecord]
    notes: list[str] = field(default_factory=list)
    samples_files: list[Path] = field(default_factory=list)
    size: int = 0


def our_tasks(suite) -> dict[str, str]:
    """{task name in a file: its tasks.yaml name}: lm-eval's names and tasks.yaml's own."""
    by_name = {spec.lm_eval_task: spec.name for spec in suite.tasks.values()}
    by_name.update({name: name for name in suite.tasks})
    return by_name


def _metrics(raw: dict, suite) -> tuple[list, list[str]]:
    """Every storable metric of the file, under stored task names, and the tasks left out, each
    with why."""
    from evalsuite.lmeval.results import parse_results

    try:
        metrics = parse_results(raw)
    except (ValueError, TypeError, AttributeError) as exc:
        raise SkipFile(names.printable(exc) if isinstance(exc, ValueError) else "not an lm-eval results file") from None
    rename, kept, notes = our_tasks(suite), [], []
    for m in metrics:
        if names.is_valid(m.task) and names.is_valid(m.metric):
            kept.append(replace(m, task=rename.get(m.task, m.task)))
        else:
            bad = m.task if not names.is_valid(m.task) else m.metric
            notes.append(f"task {names.shown(m.task)} metric {names.shown(m.metric)} left out: "
                         f"{names.shown(bad)} is not a usable name ({names.RULE})")
    with_metrics = {m.task for m in metrics}
    notes += [f"task {names.shown(task)} left out: it holds no number evalsuite can store"
              for task in raw["results"] if task not in with_metrics]
    return kept, notes


def load_file(path: Path, opts: LoadOptions) -> Loaded:
    """One result file -> its jobs, every row checked, or SkipFile saying why not."""
    raw, data = read_json(path, opts.max_mb)
    metrics, notes = _metrics(raw, opts.suite)
    if opts.tasks is not None:  # asked for a few: the others are not left out by the file's fault
        metrics, notes = [m for m in metrics if m.task in opts.tasks], []
    if not metrics:
        raise SkipFile("it holds no score evalsuite can store" + (f" ({notes[0]})" if notes else ""))
    ident = identify(raw, opts.model, opts.step, opts.catalog)
    source, source_note = _source(opts.source, ident.source)
    notes = list(ident.notes) + ([source_note] if source_note else []) + notes
    jobs = _jobs(raw, ident, metrics, run_id_for(data, source), source)
    rename, shots_of = our_tasks(opts.suite), {m.task: m.shots for m in metrics}
    tasks = {t: (rename.get(t, t), shots_of[rename.get(t, t)]) for t in raw["results"] if rename.get(t, t) in shots_of}
    run_ids = {job.shots: job.run.run_id for job in jobs}
    read = read_samples(SamplesOf(path, tasks, ident.model, ident.step, run_ids), opts.max_mb)
    for job in jobs:
        job.samples = [s for s in read.samples if s.run_id == job.run.run_id]
        job.documents = [d for d in read.documents if d.shots == job.shots]
    return Loaded(jobs, notes + read.notes, read.files, len(data) + read.size)


def _jobs(raw: dict, ident, metrics: list, base: str, source: str) -> list[JobRecord]:
    """One checked job per shot count (run id `base`, with the shots where there are several)."""
    from evalsuite.io.checks import BadRow, check_run, check_score
    from evalsuite.lmeval.results import to_scores

    by_shots = defaultdict(list)
    for m in metrics:
        by_shots[m.shots].append(m)
    jobs = []
    for shots, group in sorted(by_shots.items()):
        run = make_run(raw, ident, base if len(by_shots) == 1 else f"{base}-{shots}shot", source)
        scores = to_scores(group, model=ident.model, step=ident.step, tokens=ident.tokens, run_id=run.run_id,
                           source=source, doc_limit=run.doc_limit, dtype=run.dtype)
        try:
            check_run(run)
            for score in scores:
                check_score(score)
        except BadRow as exc:
            raise SkipFile(str(exc)) from None
        jobs.append(JobRecord(run, shots, scores, [], model=ident.about))
    return jobs


def _source(given: str | None, named: str | None) -> tuple[str, str | None]:
    """The rows' source: --source, else the one an `evalsuite export` block names, else 'local'.
    Never 'published' unless --source says so: that name is EleutherAI's numbers."""
    if given:
        return given, None
    if named == "published":
        return "local", ("its evalsuite block says source published: stored as local "
                         "(import it with --source published to keep that)")
    return named or "local", None
