"""`evalsuite run` on this machine: the loop over a sweep's jobs.

The next checkpoint is read into host memory on a background thread (prefetch.py) while this one
is evaluated (job.py), and the previous one is committed on another (committer.py): the device
only waits for what cannot overlap. At most one model is on the device. A checkpoint that cannot
be loaded (CheckpointError) is reported and skipped; anything every checkpoint would hit (an
unreachable Hub) stops the sweep, and a rerun resumes from what is stored.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from evalsuite import store
from evalsuite.errors import CheckpointError
from evalsuite.lmeval import backends, checkpoints
from evalsuite.records import Sweep
from evalsuite.sweep.cleanup import cleanup_job
from evalsuite.sweep.committer import Committed, Committer, commit_left_over
from evalsuite.sweep.config import RunConfig
from evalsuite.sweep.job import Session, evaluate_loaded, git_commit, prepare_requests, say_notes
from evalsuite.sweep.plan import Job, checkpoint_for, plan
from evalsuite.sweep.prefetch import Prefetcher
from evalsuite.sweep.spool import spool_root


@dataclass
class Startup:
    """Where a sweep's time went before its first checkpoint was scored (printed after a run)."""

    libraries_s: float = 0.0  # importing torch, transformers, datasets, lm-eval
    store_s: float = 0.0  # opening the store, planning, registering the sweep
    tokenizer_s: float = 0.0
    requests_s: float = 0.0  # lm-eval's requests and their documents, once per sweep, while the first loads
    first_load_s: float = 0.0  # what is left of the first checkpoint's load after that

    @property
    def total_s(self) -> float:
        return self.libraries_s + self.store_s + self.tokenizer_s + self.requests_s + self.first_load_s


@dataclass(frozen=True)
class Failure:
    """A checkpoint that could not be evaluated; the sweep went on without it."""

    model: str
    step: int | None  # None: a released model's one checkpoint
    reason: str


@dataclass
class SweepReport:
    jobs: list[Committed]  # one per checkpoint committed, in order
    startup: Startup
    failed: list[Failure] = field(default_factory=list)
    unstored: list[str] = field(default_factory=list)  # evaluated, not in the store yet: each and why
    recovered: int = 0  # checkpoints an earlier, stopped sweep had left waiting, committed by this one


def quiet(_: str) -> None:
    pass


def run_sweep(cfg: RunConfig, show_progress: bool = True, say: Callable[[str], None] = quiet) -> SweepReport:
    """Run every job not yet stored; report what each committed checkpoint wrote. `say` gets
    the lines a person watching would want (the CLI prints them); the sweep's progress
    (checkpoints planned and stored) is kept in the store's sweeps table."""
    startup, lap = Startup(), _stopwatch()
    device = checkpoints.pick_device(cfg.device)
    backends.quiet_libraries()
    env = {**checkpoints.environment(device), "evalsuite_commit": git_commit()}
    startup.libraries_s = lap()
    store.init(cfg.db)
    recovered = commit_left_over(cfg.db)  # a stopped sweep's evaluated checkpoints, before planning
    dtype = checkpoints.pick_dtype(cfg.dtype, device)
    jobs = pending(cfg, dtype, f"{device} ({dtype}, backend {cfg.backend})", say)
    report = SweepReport([], startup, recovered=recovered)
    if not jobs:
        return report
    with registered(cfg, len(jobs), env["hostname"]) as sweep:
        startup.store_s = lap()
        own = {model: backends.load_model_tokenizer(where) for model, where in cfg.tokenizers.items()}
        session = Session(device, dtype, backends.load_tokenizer(), env, sweep.sweep_id, own)
        startup.tokenizer_s = lap()
        _evaluate_jobs(cfg, jobs, session, report, show_progress, say)
    return report


def pending(cfg: RunConfig, dtype: str, where: str, say: Callable[[str], None]) -> list[Job]:
    """The jobs not stored yet, and a line saying how many there are of how many."""
    jobs = plan(cfg, dtype)
    total = sum(len(cfg.steps[m]) for m in cfg.models)
    say(f"{total - len(jobs)} of {total} checkpoints already stored; {len(jobs)} to evaluate "
        f"on {where} into {cfg.db}")
    return jobs


@contextlib.contextmanager
def registered(cfg: RunConfig, planned: int, hostname: str) -> Iterator[Sweep]:
    """The sweep in the store's sweeps table while it runs (the dashboard's progress): marked
    done at the end, or stopped on an error or Ctrl-C (what is stored stays)."""
    sweep = Sweep(sweep_id=uuid.uuid4().hex[:16], models=",".join(cfg.models), planned=planned,
                  started_at=store.utcnow(), updated_at=store.utcnow(), hostname=hostname)
    store.start_sweep(cfg.db, sweep)
    try:
        yield sweep
    except BaseException:
        _end(cfg, sweep, "stopped")
        raise
    _end(cfg, sweep, "done")


def _end(cfg: RunConfig, sweep: Sweep, status: str) -> None:
    try:
        store.end_sweep(cfg.db, sweep.sweep_id, status)
    except store.StoreLocked:
        pass  # held still: the sweep's row says "running"; what it evaluated is stored or spooled


def _stopwatch() -> Callable[[], float]:
    """lap() -> seconds since the previous lap (or since the stopwatch was made)."""
    last = [time.perf_counter()]

    def lap() -> float:
        now = time.perf_counter()
        elapsed, last[0] = now - last[0], now
        return elapsed

    return lap


def _evaluate_jobs(cfg: RunConfig, jobs: list[Job], session: Session, report: SweepReport,
                   show_progress: bool, say: Callable[[str], None]) -> None:
    """The loop: load ahead, evaluate, commit behind."""
    from tqdm import tqdm

    def load(job: Job):
        return checkpoints.load_to_host(checkpoint_for(cfg, job.model, job.step), session.dtype)

    with tqdm(total=len(jobs), unit="ckpt", disable=not show_progress, dynamic_ncols=True,
              file=sys.__stderr__) as bar, \
            Committer(cfg.db, session.sweep_id, replace=cfg.force,
                      on_wait=waiting(bar)) as committer:
        loads, started = iter(Prefetcher(load, jobs)), time.perf_counter()  # the first load starts
        prepared = prepare_requests(cfg)  # ... and lm-eval's requests are built meanwhile
        # What each doc_id is, stored once per sweep (those stored already are skipped), on the
        # committer's thread: this process has one writer at a time, and a held store waits.
        committer.note(functools.partial(store.write_documents, cfg.db, prepared.documents()), keep=True)
        report.startup.requests_s = time.perf_counter() - started
        said: set[str] = set()  # the records' notes said so far
        mark = time.perf_counter()
        for job, loaded in loads:
            waited = time.perf_counter() - mark
            if job is jobs[0]:
                report.startup.first_load_s = waited
            bar.set_description(f"{job.model} step{job.step}" if job.step is not None else job.model)
            if isinstance(loaded, CheckpointError):  # this checkpoint only: report it, go on
                report.failed.append(Failure(job.model, job.step, str(loaded)))
            elif isinstance(loaded, BaseException):
                raise loaded  # every checkpoint would fail the same way; a rerun resumes here
            else:
                record = evaluate_loaded(cfg, job, loaded, session, prepared, waited)
                del loaded
                say_notes(record, said, say)  # a backend fallback: once a sweep, not once a checkpoint
                committer.submit(record)
                say_held(committer, said, say)
                _cleanup(cfg, job, say)
                record.times.wall_s = time.perf_counter() - mark  # the commit itself overlaps the next
                del record
            bar.update()
            mark = time.perf_counter()
        last_commits(committer, said, say)
    report.jobs, report.unstored = committer.committed, committer.left
    report.recovered += committer.recovered


def waiting(bar) -> Callable[[str | None], None]:
    """The committer's news about a held store, on the progress line (from its thread: the bar
    writes to the real stderr, which evaluation's silencing leaves alone)."""
    def on_wait(holder: str | None) -> None:
        bar.set_postfix_str(f"store held by {holder}: evaluated checkpoints wait" if holder else "")

    return on_wait


def say_held(committer: Committer, said: set[str], say: Callable[[str], None]) -> None:
    """Once a sweep, from the main thread (prints there are not silenced): who holds the store."""
    holder = committer.holder
    if holder and "held" not in said:
        said.add("held")
        say(f"the store is held by {holder}; evaluated checkpoints wait (in memory, then in "
            f"{spool_root(committer.db)}) and are committed when it is free")


def last_commits(committer: Committer, said: set[str], say: Callable[[str], None]) -> None:
    """Once every checkpoint is handed over: wait for the last commits, or, where the store is
    held, say so (once) before Committer.close waits for it, up to an hour. The committer may
    learn of a reader only after the last hand-over, and a sweep waiting silently looks hung."""
    committer.wait()  # returns at once where the store is held
    say_held(committer, said, say)


def _cleanup(cfg: RunConfig, job: Job, say: Callable[[str], None]) -> None:
    """--cleanup: delete an evaluated Hub revision from the HF cache, and say so."""
    freed = cleanup_job(cfg, job)
    if freed:
        ckpt = checkpoint_for(cfg, job.model, job.step)
        say(f"removed {ckpt.repo_id}@{ckpt.revision} from the HF cache ({freed / 2**20:.0f} MiB)")
