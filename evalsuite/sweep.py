"""`evalsuite run`: plan (model, step) jobs, skip what is stored, evaluate the rest, store each.

The unit of work is one job: one checkpoint loaded once, every requested task run on it, and the
results committed in one transaction (store.write_job). A sweep is just a loop over jobs, so jobs
can later be farmed out to other GPUs or machines. Resuming is planning again: a task whose key
(model, step, shots, limit, dtype) is already stored is skipped unless --force.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

from evalsuite import demo, registry, store
from evalsuite.errors import CheckpointError, EvalsuiteError
from evalsuite.paths import ROOT
from evalsuite.committer import Committed, Committer
from evalsuite.records import JobRecord, Run, Sweep
from evalsuite.tasks import TaskSpec, load_tasks


@dataclass(frozen=True)
class RunConfig:
    """Everything `evalsuite run` was asked to do, validated."""

    models: list[str]
    steps: dict[str, list[int]]  # per model
    tasks: list[TaskSpec]
    data_dir: Path | None  # None: the Hub
    db: Path
    shots: int = 0
    limit: int | None = None
    device: str | None = None
    dtype: str | None = None
    batch_size: str = "auto"
    backend: str = "fast"
    model_path: Path | None = None
    force: bool = False
    cleanup: bool = False


@dataclass(frozen=True)
class Job:
    model: str
    step: int
    tasks: list[TaskSpec]  # the tasks still to run


def config_from_args(args) -> RunConfig:
    """Parse and validate the CLI arguments before anything heavy is imported."""
    demo_run = args.model in (None, demo.DEMO_NAME)
    known = {**registry.MODELS, demo.DEMO_NAME: None}
    models = registry.parse_models(args.model or demo.DEMO_NAME, known)
    steps_text = args.steps or "all"
    steps = {m: registry.parse_steps(steps_text, demo.DEMO_STEPS if m == demo.DEMO_NAME else None)
             for m in models}
    suite = load_tasks(args.tasks_file) if args.tasks_file else load_tasks()
    suite = suite.with_data_dir(args.data_dir)
    names = [t.strip() for t in args.tasks.split(",")] if args.tasks else None
    if args.shots < 0 or (args.limit is not None and args.limit < 1):
        raise EvalsuiteError("--shots must be >= 0 and --limit >= 1")
    limit = args.limit if args.limit is not None or not demo_run else demo.DEMO_LIMIT
    model_path = Path(args.model_path) if args.model_path else None
    if model_path and not model_path.is_dir():
        raise EvalsuiteError(f"--model-path {model_path} is not a directory")
    return RunConfig(
        models=models, steps=steps, tasks=suite.select(names), data_dir=suite.data_dir,
        shots=args.shots, limit=limit, device=args.device, dtype=args.dtype,
        batch_size=str(args.batch_size), backend=args.backend, model_path=model_path,
        db=store.db_path(args.db), force=args.force, cleanup=args.cleanup)


def plan(cfg: RunConfig, dtype: str) -> list[Job]:
    """The jobs still to do: (model, step) pairs with the tasks not yet stored."""
    jobs = []
    for model in cfg.models:
        stored = {} if cfg.force else store.stored_tasks_by_step(cfg.db, _key(cfg, model, None, dtype))
        for step in cfg.steps[model]:
            todo = [t for t in cfg.tasks if t.name not in stored.get(step, set())]
            if todo:
                jobs.append(Job(model, step, todo))
    return jobs


def _key(cfg: RunConfig, model: str, step: int | None, dtype: str) -> store.JobKey:
    return store.JobKey(model=model, step=step, shots=cfg.shots, doc_limit=cfg.limit, dtype=dtype)


def checkpoint_for(cfg: RunConfig, model: str, step: int):
    """Where (model, step) is loaded from: --model-path, the demo folder, or the Hub."""
    from evalsuite.runner import Checkpoint

    revision = registry.revision(step)
    if cfg.model_path:
        nested = cfg.model_path / model / revision
        return Checkpoint(model, step, local_dir=nested if nested.exists() else cfg.model_path / revision)
    if model == demo.DEMO_NAME:
        return Checkpoint(model, step, local_dir=demo.build_demo_checkpoints() / revision)
    return Checkpoint(model, step, repo_id=registry.MODELS[model].repo_id, revision=revision)


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def new_run(cfg: RunConfig, job: Job, loaded, session: "Session") -> Run:
    return Run(
        run_id=uuid.uuid4().hex[:16], source="local", model=job.model, step=job.step,
        backend=cfg.backend, model_source=loaded.checkpoint.describe(), model_commit=loaded.commit,
        data_source=str(cfg.data_dir) if cfg.data_dir else "hub", doc_limit=cfg.limit,
        dtype=session.dtype, batch_size=cfg.batch_size, device=session.device,
        started_at=store.utcnow(), **session.env)


def prepare_requests(cfg: RunConfig):
    """lm-eval's requests for every task of the sweep, built once (lmeval/requests.py)."""
    from evalsuite import runner
    from evalsuite.lmeval.requests import prepare

    configs = runner.task_configs(cfg.tasks, cfg.data_dir, cfg.shots)
    with silenced():
        return prepare(configs, cfg.shots, cfg.limit, str(cfg.data_dir) if cfg.data_dir else "hub")


@contextlib.contextmanager
def silenced():
    """lm-eval, datasets and transformers print and draw progress bars per task and stage; the
    sweep's own bar (on the real stderr) is the one to read, so theirs go nowhere. Logged
    warnings still show."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink), contextlib.redirect_stdout(sink):
        yield


def evaluate_job(cfg: RunConfig, job: Job, model, run: Run, session: "Session", prepared) -> JobRecord:
    """Score one loaded checkpoint on the job's tasks with the sweep's prepared requests."""
    from evalsuite import runner
    from evalsuite.lmeval import evaluate

    requests = prepared.subset([t.name for t in job.tasks])
    lm = runner.make_lm(model, session.tokenizer, cfg.backend, cfg.batch_size)
    started = time.perf_counter()
    with silenced():
        evaluate.respond(lm, requests)
        scored = time.perf_counter()
        record = evaluate.collect(requests, run)
    record.times.scoring_s, record.times.metrics_s = scored - started, time.perf_counter() - scored
    finished = store.utcnow()
    record.run = replace(run, finished_at=finished, duration_s=(finished - run.started_at).total_seconds())
    return record


def quiet_libraries() -> None:
    """lm-eval, datasets and transformers log and draw progress bars per task; the sweep draws one."""
    import logging

    os.environ["TQDM_DISABLE"] = "1"  # every tqdm that is not explicitly enabled (ours is)
    for name in ("lm_eval", "lm-eval", "datasets", "transformers", "accelerate", "evaluate"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()  # "Loading weights" on the prefetch thread


@dataclass
class Startup:
    """Where a sweep's time went before its first checkpoint was scored (printed after a run)."""

    libraries_s: float = 0.0  # importing torch, transformers, datasets, lm-eval
    store_s: float = 0.0  # opening the store, planning, registering the sweep
    tokenizer_s: float = 0.0
    requests_s: float = 0.0  # building lm-eval's requests, once per sweep, while the first loads
    first_load_s: float = 0.0  # what is left of the first checkpoint's load after that

    @property
    def total_s(self) -> float:
        return self.libraries_s + self.store_s + self.tokenizer_s + self.requests_s + self.first_load_s


@dataclass(frozen=True)
class Failure:
    """A checkpoint that could not be evaluated; the sweep went on without it."""

    model: str
    step: int
    reason: str


@dataclass
class SweepReport:
    jobs: list[Committed]  # one per checkpoint committed, in order
    startup: Startup
    failed: list[Failure] = field(default_factory=list)


def run_sweep(cfg: RunConfig, show_progress: bool = True) -> SweepReport:
    """Run every job not yet stored; report what each committed checkpoint wrote.

    The sweep's progress (checkpoints planned and stored) is kept in the store's sweeps table.
    """
    from evalsuite import runner

    startup, lap = Startup(), _stopwatch()
    device = runner.pick_device(cfg.device)
    quiet_libraries()
    env = {**runner.environment(device), "evalsuite_commit": git_commit()}
    startup.libraries_s = lap()
    store.init(cfg.db)
    dtype = runner.pick_dtype(cfg.dtype, device)
    jobs = plan(cfg, dtype)
    total = sum(len(cfg.steps[m]) for m in cfg.models)
    print(f"{total - len(jobs)} of {total} checkpoints already stored; {len(jobs)} to evaluate "
          f"on {device} ({dtype}, backend {cfg.backend}) into {cfg.db}")
    if not jobs:
        return SweepReport([], startup)
    sweep = Sweep(sweep_id=uuid.uuid4().hex[:16], models=",".join(cfg.models), planned=len(jobs),
                  started_at=store.utcnow(), updated_at=store.utcnow(), hostname=env["hostname"])
    store.start_sweep(cfg.db, sweep)
    startup.store_s = lap()
    session = Session(device, dtype, runner.load_tokenizer(), env, sweep.sweep_id)
    startup.tokenizer_s = lap()
    report = SweepReport([], startup)
    try:
        _evaluate_jobs(cfg, jobs, session, report, show_progress)
    except BaseException:  # an error, or Ctrl-C: what is stored stays; the sweep is marked
        store.end_sweep(cfg.db, sweep.sweep_id, "stopped")
        raise
    store.end_sweep(cfg.db, sweep.sweep_id, "done")
    return report


def _stopwatch():
    """lap() -> seconds since the previous lap (or since the stopwatch was made)."""
    last = [time.perf_counter()]

    def lap() -> float:
        now = time.perf_counter()
        elapsed, last[0] = now - last[0], now
        return elapsed

    return lap


@dataclass(frozen=True)
class Session:
    """What every job of one sweep shares."""

    device: str
    dtype: str
    tokenizer: object
    env: dict  # versions, hardware, host and evalsuite commit: each run's provenance
    sweep_id: str


def _evaluate_jobs(cfg: RunConfig, jobs: list[Job], session: Session, report: SweepReport,
                   show_progress: bool) -> None:
    """The loop: the next checkpoint is read into host memory on a background thread while this
    one is evaluated, and the previous one is committed on another. At most one model is on the
    device: the next is placed only once this one is released."""
    from tqdm import tqdm

    from evalsuite import runner
    from evalsuite.prefetch import Prefetcher

    def load(job: Job):
        return runner.load_to_host(checkpoint_for(cfg, job.model, job.step), session.dtype)

    with Committer(cfg.db, session.sweep_id, replace=cfg.force) as committer, \
            tqdm(total=len(jobs), unit="ckpt", disable=not show_progress, dynamic_ncols=True,
                 file=sys.__stderr__) as bar:
        loads, started = iter(Prefetcher(load, jobs)), time.perf_counter()  # the first load starts
        prepared = prepare_requests(cfg)  # ... and lm-eval's requests are built meanwhile
        report.startup.requests_s = time.perf_counter() - started
        mark = time.perf_counter()
        for job, loaded in loads:
            waited = time.perf_counter() - mark
            if job is jobs[0]:
                report.startup.first_load_s = waited
            bar.set_description(f"{job.model} step{job.step}")
            if isinstance(loaded, CheckpointError):  # this checkpoint only: report it, go on
                report.failed.append(Failure(job.model, job.step, str(loaded)))
            elif isinstance(loaded, BaseException):
                raise loaded  # every checkpoint would fail the same way; a rerun resumes here
            else:
                record = evaluate_loaded(cfg, job, loaded, session, prepared, waited)
                del loaded
                committer.submit(record)
                _cleanup(cfg, job)
                record.times.wall_s = time.perf_counter() - mark  # the commit itself overlaps the next
                del record
            bar.update()
            mark = time.perf_counter()
    report.jobs = committer.committed


def evaluate_loaded(cfg: RunConfig, job: Job, loaded, session: Session, prepared, waited: float) -> JobRecord:
    """Place the host-loaded checkpoint on the device, evaluate it, release it (this loop's and
    each Ray worker's way to score a checkpoint)."""
    from evalsuite import runner

    started = time.perf_counter()
    runner.place_on_device(loaded, session.device)  # through the module: tests count placements
    placed = time.perf_counter()
    record = evaluate_job(cfg, job, loaded.model, new_run(cfg, job, loaded, session), session, prepared)
    loaded.release()  # the next checkpoint is placed only once this one is gone
    record.times.load_wait_s, record.times.place_s = waited, placed - started
    return record


def _cleanup(cfg: RunConfig, job: Job) -> None:
    """--cleanup: delete an evaluated Hub revision from the HF cache."""
    from evalsuite.prefetch import cleanup_revision

    ckpt = checkpoint_for(cfg, job.model, job.step)
    if not (cfg.cleanup and ckpt.repo_id):
        return
    freed = cleanup_revision(ckpt.repo_id, ckpt.revision)
    if freed:
        print(f"removed {ckpt.repo_id}@{ckpt.revision} from the HF cache ({freed / 2**20:.0f} MiB)")


def run_from_args(args) -> None:
    from evalsuite.inspect import print_run_summary
    from evalsuite.ray_sweep import options_from_args

    cfg, ray_opts = config_from_args(args), options_from_args(args)
    if cfg.models == [demo.DEMO_NAME]:
        print(f"Evaluating the demo model ({demo.DEMO_NAME}): a tiny GPT-NeoX built here with the "
              f"real Pythia tokenizer, NOT Pythia; {cfg.limit} documents per task.")
    store.init(cfg.db)  # an unusable store path fails now, not after the demo model is trained
    if demo.DEMO_NAME in cfg.models and not cfg.model_path and not demo.is_built():
        print(f"Building the demo model's checkpoints in {demo.DEMO_MODEL_DIR} (once, a minute or two).")
        demo.build_demo_checkpoints(progress=True)
    if ray_opts:
        from evalsuite.ray_sweep import run_ray_sweep

        report = run_ray_sweep(cfg, ray_opts)
    else:
        report = run_sweep(cfg)
    print_run_summary(cfg.db, report, shots=cfg.shots)
    if ray_opts:
        print(report.cluster_summary())
    for failure in report.failed:
        print(f"not evaluated: {failure.model} step {failure.step}: {failure.reason}", file=sys.stderr)
    if report.failed:
        raise EvalsuiteError(
            f"{len(report.failed)} checkpoint(s) could not be evaluated (listed above); the others "
            "are stored. Run the same command again to retry them")
