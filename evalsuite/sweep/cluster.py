"""`evalsuite run --ray ADDRESS`: the same sweep, its checkpoints spread over a Ray cluster's workers.

ADDRESS is `local` (a private Ray instance on this machine, gone when the sweep ends), `auto` or
HOST:PORT (a running cluster's head, e.g. started by examples/slurm or KubeRay). Jobs are planned
exactly as `evalsuite run` plans them (sweep.plan skips what is stored) and handed out to
long-lived workers (cluster_worker.EvalWorker; cluster_pool.py runs them): one per CPU with
--device cpu, else one per GPU slot (packing.py: small models share a GPU; a sweep of mixed
sizes runs in phases). Each worker has
two jobs in flight, so it loads the next checkpoint while it scores one.

This process, the driver, stays the store's only writer: each record a worker sends back is
committed through the sweep's Committer in its own transaction (resume, --force, the sweeps
table and the dashboard's progress work as in a local sweep), and each worker's state goes into
the store's `workers` table for the dashboard's Runs view.

Faults: a worker that dies (its process killed, its node lost) gives its jobs back to the queue
for the other workers and a replacement started in its place; the death is charged to the job
it was running (cluster_pool.py says how), and a job charged MAX_ATTEMPTS times is reported, not
retried again. A checkpoint that cannot be loaded
(CheckpointError) is reported once, by name; any other error stops the sweep. A killed or
interrupted driver (Ctrl-C, SIGTERM, SIGHUP: cluster_stops.py): the same command resumes from
the store.

`--ray local` keeps Ray on this machine: every Ray process listens on 127.0.0.1 only, with a
random token (Ray's token authentication), no dashboard or job server, in a private temp dir,
and evalsuite.sweep.reaper removes every one of its processes when the sweep ends, even a SIGKILLed one.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import secrets
import socket
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from evalsuite import store
from evalsuite.errors import EvalsuiteError, first_line
from evalsuite.lmeval import demo
from evalsuite.sweep import packing, reaper
from evalsuite.sweep.cluster_head import ADDRESS, check_head
from evalsuite.sweep.cluster_pool import WORKER_CPUS, Pool, Shared
from evalsuite.sweep.cluster_stops import ray_errors_to, stopped_by_signals
from evalsuite.sweep.committer import Committer, commit_left_over
from evalsuite.sweep.config import RunConfig
from evalsuite.sweep.job import git_commit
from evalsuite.sweep.local import Startup, SweepReport, last_commits, pending, quiet, registered, waiting
from evalsuite.sweep.plan import Job

if TYPE_CHECKING:
    from evalsuite.sweep.cluster_worker import WorkerSetup

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
    requeued: list[tuple[str, int | None]] = field(default_factory=list)  # (model, step) whose worker died

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
    require_ray()
    return RayOptions(args.ray, args.workers)


RAY_MISSING = "--ray needs Ray, an optional extra of evalsuite: pip install 'evalsuite[ray]'"


def require_ray() -> None:
    """Ray is optional (pyproject's `ray` extra): without it, one line naming the install command.
    Looked up, not imported: Ray reads its loopback switches once, when imported (connected())."""
    try:
        found = importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):  # a broken or half-removed installation
        found = False
    if not found:
        raise EvalsuiteError(RAY_MISSING)


def run_ray_sweep(cfg: RunConfig, opts: RayOptions, show_progress: bool = True,
                  say: Callable[[str], None] = quiet, warn: Callable[[str], None] = quiet) -> RaySweepReport:
    """Run every job not yet stored on Ray workers; report what each committed checkpoint wrote.
    `say` gets the lines a person watching would want, `warn` the first line of each error Ray's
    cluster publishes (the CLI prints them, the second on stderr)."""
    if demo.DEMO_NAME in cfg.models and opts.address != "local":
        raise EvalsuiteError("the demo model's checkpoints are built on this machine: use --ray local")
    store.init(cfg.db)
    recovered = commit_left_over(cfg.db)  # a stopped sweep's evaluated checkpoints, before planning
    with connected(opts, cfg.device, warn) as (ray, scratch):
        device, dtype, gpu_gib = _placement(ray, cfg, opts, say)
        jobs = pending(cfg, dtype, f"Ray workers ({device}, {dtype}, backend {cfg.backend})", say)
        report = RaySweepReport([], Startup(), recovered=recovered)
        if not jobs:
            return report
        with registered(cfg, len(jobs), socket.gethostname()) as sweep:
            from evalsuite.sweep.cluster_worker import WorkerSetup

            setup = WorkerSetup(cfg=cfg, device=device, dtype=dtype, threads=WORKER_CPUS, gpu_share=0.0,
                                sweep_id=sweep.sweep_id, evalsuite_commit=git_commit(), scratch=scratch)
            _run_phases(ray, cfg, jobs, opts, gpu_gib, setup, report, show_progress, say)
    return report


@contextlib.contextmanager
def connected(opts: RayOptions, device: str | None, warn: Callable[[str], None] = quiet):
    """Yields (ray, scratch folder or None): a private instance for `local` (torn down after,
    with its reaper as the backstop), else the running cluster at opts.address (left running)."""
    local = opts.address == "local"
    if local:
        folder = Path(tempfile.mkdtemp(prefix="esray-"))  # short: Ray's socket paths must fit 107 bytes
        (folder / "workers").mkdir()
        guard = reaper.start(folder)
        os.environ.update({**_LOCAL_ENV, "RAY_AUTH_TOKEN": _LOCAL_TOKEN})
    else:
        check_head(opts.address)
    import ray

    try:
        with ray_errors_to(warn):
            if local:
                _check_loopback()
                ray.init(address="local",  # a new instance, whatever RAY_ADDRESS says
                         num_gpus=0 if device == "cpu" else None, include_dashboard=False,
                         _temp_dir=str(folder), logging_level=logging.WARNING, log_to_driver=False)
            else:
                _join(ray, opts.address)
            with stopped_by_signals():
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
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    except Exception as exc:  # no cluster there, another Ray version, a wrong token, ...
        reason = first_line(exc)[:300] or "unknown error"
        raise EvalsuiteError(f"cannot join the Ray cluster at {address}: {reason}") from None


def _check_loopback() -> None:
    """Ray reads the switch above once, when imported: it must not have been imported before."""
    from ray._private import ray_constants

    if getattr(ray_constants, "ENABLE_RAY_CLUSTER", False):
        raise EvalsuiteError("--ray local: Ray was already imported in this process without "
                             "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, so it would listen on every interface")


def _placement(ray, cfg: RunConfig, opts: RayOptions, say: Callable[[str], None]) -> tuple[str, str, float | None]:
    """(device, dtype, GPU memory in GiB) for the workers; memory None: CPU workers."""
    from evalsuite.lmeval.checkpoints import pick_dtype

    if cfg.device not in (None, "cpu", "cuda"):
        raise EvalsuiteError(f"--device {cfg.device} with --ray: use cuda or cpu "
                             "(each worker uses the GPU Ray gives it)")
    gpus = ray.cluster_resources().get("GPU", 0)
    slots = opts.slots if opts.slots != "auto" else ("gpu" if gpus and cfg.device != "cpu" else "cpu")
    if slots == "gpu" and not gpus:
        raise EvalsuiteError("the Ray cluster has no GPUs: use --device cpu for CPU workers")
    device = cfg.device or ("cuda" if slots == "gpu" else "cpu")
    return device, pick_dtype(cfg.dtype, device), _gpu_memory_gib(ray, say) if slots == "gpu" else None


def _gpu_memory_gib(ray, say: Callable[[str], None]) -> float:
    """One GPU's memory, asked on a GPU node (all are assumed alike); 80 GiB where none answers."""
    @ray.remote(num_gpus=0.01, num_cpus=0)
    def ask() -> float | None:
        from evalsuite.lmeval.checkpoints import gpu_memory_gib

        return gpu_memory_gib()

    memory = ray.get(ask.remote())
    if memory is None:
        say(f"no CUDA device where Ray placed a GPU task: packing workers as for "
            f"{packing.DEFAULT_GPU_GIB:.0f} GiB GPUs")
    return memory or packing.DEFAULT_GPU_GIB


def _run_phases(ray, cfg: RunConfig, jobs: list[Job], opts: RayOptions, gpu_gib: float | None,
                setup: WorkerSetup, report: RaySweepReport, show_progress: bool,
                say: Callable[[str], None]) -> None:
    """Every phase's jobs on workers sized for it, one Committer and one progress bar throughout."""
    from tqdm import tqdm

    from evalsuite.sweep.cluster_worker import pack_files

    files = ray.put(pack_files(cfg))  # once; each worker's node fetches it from the object store
    with tqdm(total=len(jobs), unit="ckpt", disable=not show_progress, dynamic_ncols=True,
              file=sys.__stderr__) as bar, \
            Committer(cfg.db, setup.sweep_id, replace=cfg.force, on_wait=waiting(bar)) as committer:
        shared = Shared(ray, cfg, opts, setup, files, committer, bar, report, say)
        for phase in packing.phases(cfg.models, setup.dtype, gpu_gib):
            todo = [job for job in jobs if job.model in phase.models]
            if todo:
                Pool(shared, todo, phase).run()
        last_commits(committer, set(), say)
    report.jobs, report.unstored = committer.committed, committer.left
    report.recovered += committer.recovered




def _steps(pairs: list[tuple[str, int | None]]) -> str:
    """Each model once, its steps each once: "pythia-70m steps 1000, 2000"."""
    steps: dict[str, list[int | None]] = {}
    for model, step in pairs:
        if step not in steps.setdefault(model, []):
            steps[model].append(step)
    return "; ".join(f"{model} step {got[0]}" if len(got) == 1 else
                     f"{model} steps {', '.join(map(str, sorted(got, key=lambda s: (s is None, s or 0))))}"
                     for model, got in steps.items())
