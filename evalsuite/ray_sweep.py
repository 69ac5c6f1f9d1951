"""`evalsuite run --ray ADDRESS`: the same sweep, its checkpoints spread over a Ray cluster's workers.

ADDRESS is `local` (a private Ray instance on this machine, gone when the sweep ends), `auto` or
HOST:PORT (a running cluster's head, e.g. started by examples/slurm or KubeRay). Jobs are planned
exactly as `evalsuite run` plans them (sweep.plan skips what is stored) and handed out to
long-lived workers (ray_worker.EvalWorker): one per CPU with --device cpu, else one per GPU slot
(packing.py: small models share a GPU; a sweep of mixed sizes runs in phases). Each worker has
two jobs in flight, so it loads the next checkpoint while it scores one.

This process, the driver, stays the store's only writer: each record a worker sends back is
committed through the sweep's Committer in its own transaction (resume, --force, the sweeps
table and the dashboard's progress work as in a local sweep), and each worker's state goes into
the store's `workers` table for the dashboard's Runs view.

Faults: a worker that dies (its process killed, its node lost) gives its jobs back to the queue
for the other workers and a replacement started in its place; a job whose worker died
MAX_ATTEMPTS times is reported, not retried again. A checkpoint that cannot be loaded
(CheckpointError) is reported once, by name; any other error stops the sweep. A killed or
interrupted driver: the same command resumes from the store.

`--ray local` keeps Ray on this machine: every Ray process listens on 127.0.0.1 only, with a
random token (Ray's token authentication), no dashboard or job server, in a private temp dir,
and evalsuite.reaper removes every one of its processes when the sweep ends, even a SIGKILLed one.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import os
import re
import secrets
import socket
import sys
import tempfile
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from evalsuite import demo, packing, reaper, store
from evalsuite.committer import Committer
from evalsuite.errors import EvalsuiteError
from evalsuite.records import Sweep, WorkerState
from evalsuite.sweep import Failure, Job, RunConfig, Startup, SweepReport, git_commit, plan

IN_FLIGHT = 2  # jobs per worker: one scored, the next one loading meanwhile
MAX_ATTEMPTS = 3  # a job whose worker died this many times is reported, not run again
ADDRESS = re.compile(r"^(local|auto|[A-Za-z0-9.\-]+:\d{1,5})$")


@dataclass(frozen=True)
class RayOptions:
    address: str  # "local", "auto" or "HOST:PORT" (the head's GCS address, port 6379 by default)
    workers: int | None = None  # at most this many workers at once (default: every slot)
    # What each worker reserves: "auto" is GPUs unless --device cpu or the cluster has none.
    # "gpu" with --device cpu packs workers onto GPU slots but scores on the CPU: the tests do
    # that on a cluster whose nodes declare GPUs they do not have.
    slots: str = "auto"


@dataclass
class RaySweepReport(SweepReport):
    workers: int = 0  # workers started, replacements included
    nodes: set[str] = field(default_factory=set)  # Ray node ids the workers ran on
    requeued: list[tuple[str, int]] = field(default_factory=list)  # (model, step) whose worker died

    def cluster_summary(self) -> str:
        again = f"; re-run after their worker was lost: {_steps(self.requeued)}" if self.requeued else ""
        return f"on Ray: {self.workers} worker(s) on {len(self.nodes)} node(s){again}"


def options_from_args(args) -> RayOptions | None:
    """--ray and --workers, checked before anything is imported or started."""
    if getattr(args, "ray", None) is None:
        if getattr(args, "workers", None) is not None:
            raise EvalsuiteError("--workers needs --ray (local, auto or HOST:PORT)")
        return None
    if not ADDRESS.match(args.ray):
        raise EvalsuiteError(f"--ray {args.ray!r}: use local, auto or HOST:PORT (the Ray head's address)")
    if args.workers is not None and args.workers < 1:
        raise EvalsuiteError("--workers must be at least 1")
    return RayOptions(args.ray, args.workers)


def run_ray_sweep(cfg: RunConfig, opts: RayOptions, show_progress: bool = True) -> RaySweepReport:
    """Run every job not yet stored on Ray workers; report what each committed checkpoint wrote."""
    if demo.DEMO_NAME in cfg.models and opts.address != "local":
        raise EvalsuiteError("the demo model's checkpoints are built on this machine: use --ray local")
    store.init(cfg.db)
    with connected(opts, cfg.device) as (ray, scratch):
        device, dtype, gpu_gib = _placement(ray, cfg, opts)
        jobs = plan(cfg, dtype)
        total = sum(len(cfg.steps[m]) for m in cfg.models)
        print(f"{total - len(jobs)} of {total} checkpoints already stored; {len(jobs)} to evaluate "
              f"on Ray workers ({device}, {dtype}, backend {cfg.backend}) into {cfg.db}")
        report = RaySweepReport([], Startup())
        if not jobs:
            return report
        sweep = Sweep(sweep_id=uuid.uuid4().hex[:16], models=",".join(cfg.models), planned=len(jobs),
                      started_at=store.utcnow(), updated_at=store.utcnow(), hostname=socket.gethostname())
        store.start_sweep(cfg.db, sweep)
        setup_args = dict(cfg=cfg, device=device, dtype=dtype, sweep_id=sweep.sweep_id,
                          evalsuite_commit=git_commit(), scratch=scratch)
        try:
            _run_phases(ray, cfg, jobs, opts, gpu_gib, setup_args, report, show_progress)
        except BaseException:  # an error, or Ctrl-C: what is stored stays; the sweep is marked
            store.end_sweep(cfg.db, sweep.sweep_id, "stopped")
            raise
        store.end_sweep(cfg.db, sweep.sweep_id, "done")
    return report


@contextlib.contextmanager
def connected(opts: RayOptions, device: str | None):
    """Yields (ray, scratch folder or None): a private instance for `local` (torn down after,
    with its reaper as the backstop), else the running cluster at opts.address (left running)."""
    local = opts.address == "local"
    if local:
        folder = Path(tempfile.mkdtemp(prefix="esray-"))  # short: Ray's socket paths must fit 107 bytes
        (folder / "workers").mkdir()
        marker = uuid.uuid4().hex
        guard = reaper.start(marker, folder)
        os.environ.update({reaper.MARKER_VAR: marker, **_LOCAL_ENV, "RAY_AUTH_TOKEN": _LOCAL_TOKEN})
    else:
        _check_reachable(opts.address)
    import ray

    try:
        if local:
            _check_loopback()
            ray.init(address="local",  # a new instance, whatever RAY_ADDRESS says
                     num_gpus=0 if device == "cpu" else None, include_dashboard=False,
                     _temp_dir=str(folder), logging_level=logging.WARNING)
        else:
            _join(ray, opts.address)
        yield ray, folder / "workers" if local else None
    finally:
        ray.shutdown()
        if local:
            guard.finish()


# A random token for private instances, one per process: Ray reads it once, at the first one.
_LOCAL_TOKEN = secrets.token_hex(32)
# Set before a private instance starts; each child process inherits them.
_LOCAL_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # every Ray process binds 127.0.0.1, not all interfaces
    "RAY_AUTH_MODE": "token",  # plus a random RAY_AUTH_TOKEN: nothing is written to ~/.ray
    "RAY_USAGE_STATS_ENABLED": "0",  # no usage report to anyscale
}


def _join(ray, address: str) -> None:
    try:
        ray.init(address=address, logging_level=logging.WARNING)
    except Exception as exc:  # no cluster there, another Ray version, a wrong token, ...
        raise EvalsuiteError(f"cannot join the Ray cluster at {address}: {_first_line(str(exc))}") from None


def _check_loopback() -> None:
    """Ray reads the switch above once, when imported: it must not have been imported before."""
    from ray._private import ray_constants

    if getattr(ray_constants, "ENABLE_RAY_CLUSTER", False):
        raise EvalsuiteError("--ray local: Ray was already imported in this process without "
                             "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, so it would listen on every interface")


def _check_reachable(address: str) -> None:
    """A wrong HOST:PORT fails in seconds, not after Ray's minutes of retries."""
    if address == "auto":
        return  # Ray finds the local node's head itself, or says it found none, at once
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as exc:
        raise EvalsuiteError(f"--ray {address}: nothing answers there ({exc.strerror or exc}); start the "
                             "head with `ray start --head` and pass the address it prints") from None


def _placement(ray, cfg: RunConfig, opts: RayOptions) -> tuple[str, str, float | None]:
    """(device, dtype, GPU memory in GiB) for the workers; memory None: CPU workers."""
    from evalsuite.runner import pick_dtype

    if cfg.device not in (None, "cpu", "cuda"):
        raise EvalsuiteError(f"--device {cfg.device} with --ray: use cuda or cpu (each worker uses the GPU Ray gives it)")
    gpus = ray.cluster_resources().get("GPU", 0)
    slots = opts.slots if opts.slots != "auto" else ("gpu" if gpus and cfg.device != "cpu" else "cpu")
    if slots == "gpu" and not gpus:
        raise EvalsuiteError("the Ray cluster has no GPUs: use --device cpu for CPU workers")
    device = cfg.device or ("cuda" if slots == "gpu" else "cpu")
    return device, pick_dtype(cfg.dtype, device), _gpu_memory_gib(ray) if slots == "gpu" else None


def _gpu_memory_gib(ray) -> float:
    """One GPU's memory, asked on a GPU node (all are assumed alike); 80 GiB where none answers."""
    @ray.remote(num_gpus=0.01, num_cpus=0)
    def ask() -> float | None:
        import torch

        return torch.cuda.get_device_properties(0).total_memory / 2**30 if torch.cuda.is_available() else None

    memory = ray.get(ask.remote())
    if memory is None:
        print(f"no CUDA device where Ray placed a GPU task: packing workers as for "
              f"{packing.DEFAULT_GPU_GIB:.0f} GiB GPUs")
    return memory or packing.DEFAULT_GPU_GIB


def _run_phases(ray, cfg: RunConfig, jobs: list[Job], opts: RayOptions, gpu_gib: float | None,
                setup_args: dict, report: RaySweepReport, show_progress: bool) -> None:
    """Every phase's jobs on workers sized for it, one Committer and one progress bar throughout."""
    from tqdm import tqdm

    from evalsuite.ray_worker import pack_files

    files = ray.put(pack_files(cfg))  # once; each worker's node fetches it from the object store
    with Committer(cfg.db, setup_args["sweep_id"], replace=cfg.force) as committer, \
            tqdm(total=len(jobs), unit="ckpt", disable=not show_progress, dynamic_ncols=True,
                 file=sys.__stderr__) as bar:
        shared = _Shared(ray, cfg, opts, setup_args, files, committer, bar, report)
        for phase in packing.phases(cfg.models, setup_args["dtype"], gpu_gib):
            todo = [job for job in jobs if job.model in phase.models]
            if todo:
                _Pool(shared, todo, phase).run()
    report.jobs = committer.committed


@dataclass
class _Shared:
    """What every phase of one Ray sweep uses."""

    ray: Any
    cfg: RunConfig
    opts: RayOptions
    setup_args: dict  # WorkerSetup's fields but the per-phase ones
    files: Any  # the object ref of ray_worker.pack_files(cfg)
    committer: Committer
    bar: Any
    report: RaySweepReport
    numbers: itertools.count = field(default_factory=itertools.count)  # worker numbers, sweep-wide


@dataclass
class _Worker:
    handle: Any
    state: WorkerState
    jobs: list[Job] = field(default_factory=list)  # in flight, oldest (the one scored now) first
    tickets: int = 0


class _Pool:
    """One phase: its workers, the jobs queued and in flight, and what comes back from them."""

    def __init__(self, shared: _Shared, jobs: list[Job], phase: packing.Phase):
        from evalsuite.ray_worker import EvalWorker, WorkerSetup

        self.shared, self.ray, self.report, self.queue = shared, shared.ray, shared.report, deque(jobs)
        share = 1 / phase.per_gpu if phase.per_gpu else 0.0
        self.setup = WorkerSetup(threads=1, gpu_share=share, **shared.setup_args)
        self.gpu_label = f" (1/{phase.per_gpu})" if phase.per_gpu else ""
        self.actor = self.ray.remote(EvalWorker).options(
            num_cpus=1, num_gpus=share, max_concurrency=IN_FLIGHT, max_restarts=0,
            scheduling_strategy="SPREAD")  # over nodes first: more disks, links and host memory
        self.size = _worker_count(self.ray, phase, len(jobs), shared.opts)
        self.waiting: dict[Any, tuple[_Worker, Job | None]] = {}  # result ref -> worker, job (None: its info)
        self.workers: list[_Worker] = []
        self.deaths: Counter = Counter()

    def run(self) -> None:
        try:
            for _ in range(self.size):
                self._start()
            while self.queue or any(w.jobs for w in self.workers):
                if not self.waiting:
                    raise EvalsuiteError("no worker left to run the remaining checkpoints; run the same command again")
                ready, _ = self.ray.wait(list(self.waiting), num_returns=1, timeout=1.0)
                for ref in ready:
                    self._settle(ref)
        except BaseException:
            self._stop(graceful=False)  # an error or Ctrl-C: no waiting on workers
            raise
        self._stop(graceful=True)

    def _start(self) -> None:
        worker = _Worker(self.actor.remote(self.setup, self.shared.files),
                         WorkerState(self.setup.sweep_id, next(self.shared.numbers), "starting"))
        self.workers.append(worker)
        self.report.workers += 1
        self.waiting[worker.handle.info.remote()] = (worker, None)
        self._note(worker)

    def _settle(self, ref) -> None:
        from ray.exceptions import RayActorError, RayTaskError

        worker, job = self.waiting.pop(ref)
        try:
            result = self.ray.get(ref)
        except RayActorError as exc:
            return self._lost(worker, exc)
        except RayTaskError as exc:  # raised by our code on the worker: stop, as a local sweep does
            raise exc.cause if isinstance(exc.cause, EvalsuiteError) else exc
        if job is None:
            worker.state = replace(worker.state, state="idle", node=result.node, node_id=result.node_id,
                                   pid=result.pid, gpu=result.gpus + self.gpu_label)
            self.report.nodes.add(result.node_id)
        else:
            self._done(worker, job, result)
        self._feed(worker)

    def _feed(self, worker: _Worker) -> None:
        """Keep IN_FLIGHT jobs on the worker; its state names the job it scores now."""
        while len(worker.jobs) < IN_FLIGHT and self.queue:
            job = self.queue.popleft()
            self.waiting[worker.handle.evaluate.remote(job, worker.tickets)] = (worker, job)
            worker.tickets += 1
            worker.jobs.append(job)
        first = worker.jobs[0] if worker.jobs else None
        worker.state = replace(worker.state, state="evaluating" if first else "idle",
                               model=first and first.model, step=first and first.step)
        self._note(worker)

    def _done(self, worker: _Worker, job: Job, outcome) -> None:
        worker.jobs.remove(job)
        if outcome.record is None:  # this checkpoint only: reported once, never retried
            self.report.failed.append(Failure(job.model, job.step, outcome.failure))
        else:
            self.shared.committer.submit(outcome.record)
            worker.state = replace(worker.state, done=worker.state.done + 1)
            if outcome.freed:
                print(f"removed {job.model} step {job.step} from the HF cache of {worker.state.node} "
                      f"({outcome.freed / 2**20:.0f} MiB)")
        self.shared.bar.update()

    def _lost(self, worker: _Worker, exc) -> None:
        """A dead worker's jobs go back to the front of the queue; a replacement takes its place."""
        if exc.actor_init_failed:  # it could not even start: every replacement would fail alike
            raise EvalsuiteError(f"a Ray worker could not start: {_last_line(str(exc))}") from None
        self.ray.kill(worker.handle)  # an unreachable one may still be running: no second result
        self.waiting = {r: (w, j) for r, (w, j) in self.waiting.items() if w is not worker}
        for job in reversed(worker.jobs):
            self.deaths[(job.model, job.step)] += 1
            self.report.requeued.append((job.model, job.step))
            if self.deaths[(job.model, job.step)] >= MAX_ATTEMPTS:
                self.report.failed.append(Failure(job.model, job.step, f"its worker died {MAX_ATTEMPTS} times"))
                self.shared.bar.update()
            else:
                self.queue.appendleft(job)
        worker.jobs = []
        worker.state = replace(worker.state, state="lost", model=None, step=None)
        self._note(worker)
        self.workers.remove(worker)
        if self.queue:
            self._start()

    def _stop(self, graceful: bool) -> None:
        """Every worker of the phase ends; gracefully, each first removes its scratch folder."""
        closing = [w.handle.close.remote() for w in self.workers if graceful and w.state.state != "starting"]
        with contextlib.suppress(Exception):
            if closing:
                self.ray.wait(closing, num_returns=len(closing), timeout=10)
        for worker in self.workers:
            with contextlib.suppress(Exception):
                self.ray.kill(worker.handle)
            worker.state = replace(worker.state, state="stopped", model=None, step=None)
            self._note(worker)

    def _note(self, worker: _Worker) -> None:
        """The worker's state into the store, written on the commit thread (the one writer)."""
        worker.state = replace(worker.state, updated_at=store.utcnow())
        self.shared.committer.note(functools.partial(store.set_worker, self.shared.cfg.db, worker.state))
        busy = sum(1 for w in self.workers if w.jobs)
        self.shared.bar.set_description(f"{busy} of {len(self.workers)} workers busy")


def _worker_count(ray, phase: packing.Phase, jobs: int, opts: RayOptions) -> int:
    """One per CPU (CPU workers) or per GPU slot, at most --workers and no more than jobs."""
    resources = ray.cluster_resources()
    slots = int(resources.get("GPU", 0)) * phase.per_gpu if phase.per_gpu else int(resources.get("CPU", 1))
    return max(1, min(slots, jobs, opts.workers or slots))


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:300] if text.strip() else "unknown error"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "unknown error"


def _steps(pairs: list[tuple[str, int]]) -> str:
    return ", ".join(f"{model} step {step}" for model, step in pairs)
