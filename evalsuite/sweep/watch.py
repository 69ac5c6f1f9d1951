"""`evalsuite watch DIR --model NAME`: follow a training run, evaluating each checkpoint it saves.

Every poll finds the run's checkpoint folders (catalog/discover.py: stepN/, checkpoint-N/, or
those under DIR/<model>/), looks at each one not yet stored (catalog/complete.py: weights, and
the tokenizer where the checkpoints bring theirs) and evaluates those that are complete and whose
files did not change since the previous look, in step order (a folder still being written does
not hold back a later one that is complete), through the same path as `run` (plan.py skips what
is stored, job.py scores, the committer is the one writer): a restarted watch resumes, and
nothing is read half-written. A folder that stays incomplete or cannot be loaded is reported
once, and retried only when its files change. The sweep's row in the store says what watch is
waiting for (the dashboard's Runs view shows it). Checkpoints are only ever read.
"""

from __future__ import annotations

import argparse
import functools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from evalsuite import names, store
from evalsuite.catalog.complete import UNREADABLE, Verdict, inspect
from evalsuite.catalog.discover import STEP_FOLDER, folder_checkpoints
from evalsuite.catalog.entries import load_catalog
from evalsuite.catalog.models import Checkpoint
from evalsuite.errors import CheckpointError, EvalsuiteError
from evalsuite.records import Sweep
from evalsuite.sweep.committer import Committer
from evalsuite.sweep.config import RunConfig, config_from_args, tokenizer_of
from evalsuite.sweep.job import Session, evaluate_loaded, git_commit, prepare_requests, say_notes
from evalsuite.sweep.local import Failure, last_commits, say_held
from evalsuite.sweep.plan import Job, checkpoint_for, plan

if TYPE_CHECKING:
    from evalsuite.lmeval.requests import PreparedRequests

DEFAULT_INTERVAL_S = 5.0


@dataclass(frozen=True)
class WatchOptions:
    folder: Path
    model: str
    interval_s: float = DEFAULT_INTERVAL_S
    until: int | None = None  # stop once a checkpoint at this step or later is stored
    once: bool = False  # one pass over what is complete now


@dataclass
class WatchReport:
    """What a watch did, for its last line."""

    model: str
    stored: list[int] = field(default_factory=list)  # steps this watch stored, in order
    skipped: int = 0  # checkpoints found already stored
    failed: list[Failure] = field(default_factory=list)
    waiting: str | None = None  # what it was waiting for when it ended
    ended: str = "once"  # once, until, interrupted

    def summary(self) -> str:
        steps = ", ".join(map(str, self.stored)) or "none"
        why = {"once": "one pass done", "until": "the --until step is stored",
               "interrupted": "stopped by Ctrl-C"}[self.ended]
        text = (f"watch {self.model}: stored {len(self.stored)} checkpoint(s) (steps {steps}), "
                f"{self.skipped} already stored, {len(self.failed)} not loadable; {why}")
        return text + (f"; was {self.waiting}" if self.waiting and self.ended != "until" else "")


@dataclass
class Looks:
    """What the previous poll saw of each step's folder, and what was already said about it."""

    seen: dict[int, Verdict] = field(default_factory=dict)
    said: set[str] = field(default_factory=set)  # step:signature reported as stuck or unloadable
    failed: set[str] = field(default_factory=set)  # step:signature that would not load
    done: set[int] = field(default_factory=set)  # steps stored (by this watch or before it)


@dataclass
class Poll:
    ready: list[int]  # complete, unchanged since the last look, not known stored; in step order
    waiting: dict[int, Verdict]  # the other steps not known stored


def options_from_args(args) -> WatchOptions:
    names.check("model", args.model)
    folder = Path(args.dir)
    if not folder.is_dir():
        raise EvalsuiteError(f"watch: {folder} is not a directory")
    return WatchOptions(folder, args.model, args.interval, args.until, args.once)


def watch(args, opts: WatchOptions, say: Callable[[str], None]) -> WatchReport:
    """Evaluate the run's checkpoints as they come (module docstring) until --once's pass is
    done, a checkpoint at --until is stored, or Ctrl-C; what is stored stays either way."""
    from evalsuite.lmeval import backends, checkpoints

    steps = sorted(_step_folders(opts.folder, opts.model))
    if steps:  # a bad option fails before torch loads (with no checkpoint yet, at the first one)
        config_from_args(_run_args(args, opts, steps))
    db = store.db_path(args.db)
    device = checkpoints.pick_device(args.device)
    backends.quiet_libraries()
    dtype = checkpoints.pick_dtype(args.dtype, device)
    env = {**checkpoints.environment(device), "evalsuite_commit": git_commit()}
    store.init(db)
    sweep = Sweep(sweep_id=uuid.uuid4().hex[:16], models=opts.model, planned=0, started_at=store.utcnow(),
                  updated_at=store.utcnow(), hostname=env["hostname"], note=f"waiting for checkpoints in {opts.folder}")
    store.start_sweep(db, sweep)
    report, status = WatchReport(opts.model), "stopped"
    say(f"watching {opts.folder} for {opts.model} checkpoints; evaluating on {device} ({dtype}) into {db}")
    try:
        with Committer(db, sweep.sweep_id) as committer:
            watcher = _Watcher(args, opts, committer, Session(device, dtype, None, env, sweep.sweep_id), report, say)
            watcher.run()
            last_commits(committer, watcher.notes, say)
        status = "done"
    except KeyboardInterrupt:
        report.ended = "interrupted"
    finally:
        store.end_sweep(db, sweep.sweep_id, status)
    return report


def _run_args(args, opts: WatchOptions, steps: list[int]) -> argparse.Namespace:
    """`run`'s arguments for these steps of the folder."""
    return argparse.Namespace(**{**vars(args), "model_path": str(opts.folder), "steps": ",".join(map(str, steps)),
                                 "force": False, "cleanup": False, "ray": None, "model": opts.model})


class _Watcher:
    """One watch's loop; it holds what the sweep shares once the first checkpoint is there."""

    def __init__(self, args, opts: WatchOptions, committer: Committer, session: Session,
                 report: WatchReport, say: Callable[[str], None]):
        self.args, self.opts, self.committer, self.report, self.say = args, opts, committer, report, say
        self.session, self.looks = session, Looks()
        self.prepared: PreparedRequests | None = None
        self.notes: set[str] = set()
        self.db = store.db_path(args.db)
        self.own_tokenizer = _brings_tokenizer(args, opts.model)
        self.noted: tuple[int, str] | None = None  # the sweep row's plan and note as last written

    def run(self) -> None:
        while True:
            poll = self._poll()
            if poll.ready:
                self._evaluate(poll.ready)
            self.committer.wait()
            self._note(poll)
            if self._finished():
                return
            time.sleep(self.opts.interval_s)

    def _finished(self) -> bool:
        if self.opts.until is not None and any(s >= self.opts.until for s in self.looks.done):
            self.report.ended = "until"
            return True
        return self.opts.once

    def _poll(self) -> Poll:
        """Each step's folder now, against the previous look."""
        folders = _step_folders(self.opts.folder, self.opts.model)
        ready, waiting = [], {}
        for step, folder in folders.items():
            if step in self.looks.done:
                continue
            verdict, before = inspect(folder, tokenizer=self.own_tokenizer), self.looks.seen.get(step)
            self.looks.seen[step] = verdict
            key = f"{step}:{verdict.signature}"
            if key in self.looks.failed:
                waiting[step] = replace(verdict, state=UNREADABLE, reason="it could not be loaded")
                continue
            if verdict.complete and (self.opts.once or self._settled(verdict, before)):
                ready.append(step)
                continue
            waiting[step] = verdict
            if before is not None and before.signature == verdict.signature and not verdict.complete:
                self._say_once(key, f"{self.opts.model} step {step} ({folder}) is {verdict.state}: "
                                    f"{verdict.reason}; waiting for its files to change")
        return Poll(ready, waiting)

    def _settled(self, verdict: Verdict, before: Verdict | None) -> bool:
        """Unchanged since the previous look, or for a whole interval (found complete at startup)."""
        unchanged = before is not None and before.signature == verdict.signature
        return unchanged or time.time() - verdict.changed_at >= self.opts.interval_s

    def _say_once(self, key: str, line: str) -> None:
        if key not in self.looks.said:
            self.looks.said.add(key)
            self.say(line)

    def _evaluate(self, steps: list[int]) -> None:
        """The ready steps not yet stored, in step order, each committed behind the next."""
        cfg = config_from_args(_run_args(self.args, self.opts, steps))
        self.committer.wait()  # the store is read (plan) with no commit in flight
        jobs = plan(cfg, self.session.dtype)
        todo = {job.step for job in jobs}
        for step in steps:
            if step not in todo:
                self.looks.done.add(step)
                self.report.skipped += 1
        if jobs:
            self._prepare(cfg)
        for job in jobs:
            self._evaluate_job(cfg, job)
            if self.opts.until is not None and job.step is not None and job.step >= self.opts.until:
                return

    def _prepare(self, cfg: RunConfig) -> None:
        """What every checkpoint shares, built once, when the first one is ready: its tokenizer,
        lm-eval's requests, the documents in the store (no commit is in flight yet)."""
        if self.prepared is not None:
            return
        from evalsuite.lmeval import backends

        own = {model: backends.load_model_tokenizer(where) for model, where in cfg.tokenizers.items()}
        self.session = replace(self.session, tokenizer=backends.load_tokenizer(), tokenizers=own)
        self.prepared = prepare_requests(cfg)
        # through the commit thread, kept with the records while another process holds the store
        self.committer.note(functools.partial(store.write_documents, cfg.db, self.prepared.documents()), keep=True)

    def _evaluate_job(self, cfg: RunConfig, job: Job) -> None:
        from evalsuite.lmeval import checkpoints

        assert job.step is not None and self.prepared is not None
        verdict = self.looks.seen[job.step]
        started = time.perf_counter()
        try:
            loaded = checkpoints.load_to_host(checkpoint_for(cfg, job.model, job.step), self.session.dtype)
        except CheckpointError as exc:  # complete by its files, yet unloadable: retried once they change
            self.looks.failed.add(f"{job.step}:{verdict.signature}")
            self.report.failed.append(Failure(job.model, job.step, str(exc)))
            self._say_once(f"{job.step}:{verdict.signature}", f"not evaluated: {exc}; retried when its files change")
            return
        record = evaluate_loaded(cfg, job, loaded, self.session, self.prepared, time.perf_counter() - started)
        del loaded
        say_notes(record, self.notes, self.say)
        self.committer.submit(record)
        say_held(self.committer, self.notes, self.say)
        self.looks.done.add(job.step)
        self.report.stored.append(job.step)
        self.report.failed = [f for f in self.report.failed if f.step != job.step]  # loaded once complete
        self.say(f"evaluated {job.model} step {job.step} ({time.perf_counter() - started:.1f} s)")

    def _note(self, poll: Poll) -> None:
        """The sweep row's plan and note, written on the commit thread (the one writer)."""
        note = _waiting_for(self.opts, poll, self.looks)
        self.report.waiting = note
        planned = len(self.report.stored) + len(poll.waiting)
        sweep_id = self.session.sweep_id
        assert sweep_id is not None
        if (planned, note) == self.noted:  # nothing new: the store is not written every poll
            return
        self.noted = (planned, note)
        self.committer.note(lambda: store.note_sweep(self.db, sweep_id, planned, note))
        self.committer.wait()


def _brings_tokenizer(args, model: str) -> bool:
    """Whether each checkpoint holds the model's tokenizer (read from the first one evaluated),
    as opposed to one its catalog entry names (sweep/config.py tokenizer_of)."""
    spec, probe = load_catalog(args.models_file).get(model), Checkpoint(model, None)
    return spec is None or tokenizer_of(spec, probe) is probe


def _step_folders(root: Path, model: str) -> dict[int, Path]:
    """{step: folder} of the run so far (none yet is fine); a folder that is one checkpoint is not a run."""
    bases = [base for base in (root / model, root) if base.is_dir()]
    if not any(STEP_FOLDER.fullmatch(p.name) or p.name == "config.json" for base in bases for p in base.iterdir()):
        return {}  # nothing saved yet
    found = folder_checkpoints(root, model)
    if None in found:
        raise EvalsuiteError(f"watch: {found[None]} is one checkpoint (a config.json, no stepN/ or "
                             "checkpoint-N/ folders): evaluate it with 'evalsuite run --model-path'")
    return {step: path for step, path in found.items() if step is not None}


def _waiting_for(opts: WatchOptions, poll: Poll, looks: Looks) -> str:
    if poll.waiting:
        step = min(poll.waiting)
        verdict = poll.waiting[step]
        why = verdict.reason or "its files are still changing"
        return f"waiting for step {step} to be complete ({why})"
    last = max(looks.done, default=None)
    after = f" after step {last}" if last is not None else ""
    return f"waiting for the next checkpoint{after} in {opts.folder}"
