"""One job: a loaded checkpoint scored with the sweep's prepared requests, as one JobRecord.

`prepare_requests` builds lm-eval's requests once per sweep; `evaluate_loaded` places a
host-loaded checkpoint on the device, scores it (`evaluate_job`) and releases it, so the next one
can be placed. Whoever runs the loop (sweep/local.py, or a worker elsewhere) calls these and
hands the record to the single writer (committer.py); nothing here touches the store.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from evalsuite import store
from evalsuite.lmeval import backends, checkpoints, definitions, evaluate
from evalsuite.lmeval.checkpoints import LoadedCheckpoint
from evalsuite.lmeval.requests import PreparedRequests, prepare
from evalsuite.paths import ROOT
from evalsuite.records import JobRecord, Model, Run
from evalsuite.sweep.config import RunConfig
from evalsuite.sweep.plan import Job


@dataclass(frozen=True)
class Session:
    """What every job of one sweep shares."""

    device: str
    dtype: str
    tokenizer: object  # the shipped GPT-NeoX-20B tokenizer (Pythia's)
    env: dict  # versions, hardware, host and evalsuite commit: each run's provenance
    sweep_id: str | None
    tokenizers: dict = field(default_factory=dict)  # {model: its own tokenizer}, for models that bring one

    def tokenizer_of(self, model: str):
        return self.tokenizers.get(model, self.tokenizer)


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def new_run(cfg: RunConfig, job: Job, loaded: LoadedCheckpoint, session: Session) -> Run:
    return Run(
        run_id=uuid.uuid4().hex[:16], source="local", model=job.model, step=job.step,
        backend=cfg.backend, model_source=loaded.checkpoint.describe(), model_commit=loaded.commit,
        data_source=cfg.data_source, doc_limit=cfg.limit, dtype=session.dtype,
        batch_size=cfg.batch_size, device=session.device, started_at=store.utcnow(), **session.env)


def prepare_requests(cfg: RunConfig) -> PreparedRequests:
    """lm-eval's requests for every task of the sweep, built once (lmeval/requests.py)."""
    configs = definitions.task_configs(cfg.tasks, cfg.data_dir, cfg.shots)
    with silenced():
        return prepare(configs, cfg.shots, cfg.limit, cfg.data_source)


@contextlib.contextmanager
def silenced():
    """lm-eval, datasets and transformers print and draw progress bars per task and stage; the
    sweep's own bar (on the real stderr) is the one to read, so theirs go nowhere. Logged
    warnings still show."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink), contextlib.redirect_stdout(sink):
        yield


def evaluate_job(cfg: RunConfig, job: Job, model, run: Run, session: Session,
                 prepared: PreparedRequests) -> JobRecord:
    """Score one loaded checkpoint on the job's tasks with the sweep's prepared requests."""
    requests = prepared.subset([t.name for t in job.tasks])
    choice = backends.choose_backend(model, cfg.backend)  # the fast one only where it is exact
    lm = backends.make_lm(model, session.tokenizer_of(job.model), choice.backend, cfg.batch_size)
    started = time.perf_counter()
    with silenced():
        evaluate.respond(lm, requests)
        scored = time.perf_counter()
        record = evaluate.collect(requests, run, job.tokens)
    record.times.scoring_s, record.times.metrics_s = scored - started, time.perf_counter() - scored
    record.model = _about(cfg, job, model)
    finished = store.utcnow()
    duration = (finished - run.started_at).total_seconds() if run.started_at else None
    record.run = replace(run, backend=choice.backend, finished_at=finished, duration_s=duration)
    record.notes = [f"{job.model}: {choice.note}"] if choice.note else []
    return record


def say_notes(record: JobRecord, said: set[str], say: Callable[[str], None]) -> None:
    """Each of the record's notes, the first time this sweep has it (one line, not one a checkpoint)."""
    for note in record.notes:
        if note not in said:
            said.add(note)
            say(note)


def _about(cfg: RunConfig, job: Job, model) -> Model | None:
    """What the store keeps about the job's model; its parameters counted from the loaded
    checkpoint where the catalog does not give them."""
    about = cfg.about.get(job.model)
    if about is not None and about.params is None:
        about = replace(about, params=checkpoints.parameter_count(model))
    return about


def evaluate_loaded(cfg: RunConfig, job: Job, loaded: LoadedCheckpoint, session: Session,
                    prepared: PreparedRequests, waited: float) -> JobRecord:
    """Place the host-loaded checkpoint on the device, evaluate it, release it."""
    started = time.perf_counter()
    checkpoints.place_on_device(loaded, session.device)  # through the module: tests count placements
    placed = time.perf_counter()
    record = evaluate_job(cfg, job, loaded.model, new_run(cfg, job, loaded, session), session, prepared)
    loaded.release()  # the next checkpoint is placed only once this one is gone
    record.times.load_wait_s, record.times.place_s = waited, placed - started
    return record
