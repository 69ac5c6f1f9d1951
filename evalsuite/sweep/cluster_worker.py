"""A Ray sweep's worker: a long-lived actor that evaluates the (model, step) jobs its driver sends.

Owns what lives on the worker's node. The task data and tokenizers come from the driver through
Ray's object store (`pack_files`) and are written into the worker's own scratch folder, so a node
needs only the installed package, no shared file system. lm-eval's requests are built once per
worker (on a thread, while the first checkpoints load) and the token cache lives as long as the
worker. The driver keeps two jobs in flight per worker and Ray runs both calls at once on the
actor's two threads: each reads its checkpoint into host memory as soon as it arrives (from this
node's HF cache, downloading into it if needed), so the next checkpoint loads while the current
one is scored, and takes the device only when the job before it (by ticket) has released it: one
model on the device at a time, as in the local loop (sweep.job.evaluate_loaded does the scoring for
both). `--cleanup` deletes each evaluated revision from this node's HF cache.

Nothing here imports ray except `EvalWorker.info`; ray_sweep.py wraps `EvalWorker` with ray.remote.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import tempfile
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path

from evalsuite.catalog.tasks import local_data_files
from evalsuite.errors import CheckpointError
from evalsuite.paths import TOKENIZER_DIR
from evalsuite.records import JobRecord
from evalsuite.sweep.cleanup import cleanup_job
from evalsuite.sweep.config import RunConfig
from evalsuite.sweep.plan import Job


def pack_files(cfg: RunConfig) -> dict[str, bytes]:
    """The tokenizer folder, the files of each model's own tokenizer that is a folder here, and the
    sweep's local task data files, as {relative path: bytes}."""
    files = {f"tokenizer/{p.name}": p.read_bytes() for p in sorted(TOKENIZER_DIR.iterdir()) if p.is_file()}
    for model, where in cfg.tokenizers.items():
        if where.local_dir is not None:  # a Hub tokenizer: each node's HF cache, as its checkpoints
            files |= {f"{own_tokenizer_folder(cfg, model)}/{p.name}": p.read_bytes()
                      for p in sorted(where.local_dir.iterdir()) if _tokenizer_file(p)}
    if cfg.data_dir is not None:  # None: the Hub; each node downloads into its own datasets cache
        for spec in cfg.tasks:
            for path in local_data_files(cfg.data_dir, spec).values():
                files[f"tasks/{spec.name}/{path.name}"] = path.read_bytes()
    return files


# A checkpoint folder holds the model's tokenizer beside its weights: everything but the weights goes
_WEIGHTS = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".gguf", ".onnx", ".index.json")
_TOKENIZER_FILE_MAX = 64 * 2**20  # a tokenizer.json is a few MB; anything far larger is not one


def _tokenizer_file(path: Path) -> bool:
    return path.is_file() and not path.name.endswith(_WEIGHTS) and path.stat().st_size <= _TOKENIZER_FILE_MAX


def own_tokenizer_folder(cfg: RunConfig, model: str) -> str:
    """Where a model's own tokenizer goes in a worker's folder (by position: a name may hold '/')."""
    return f"tokenizers/{cfg.models.index(model)}"


def unpack_files(files: dict[str, bytes], root: Path) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


FOLDER_PREFIX = "evalsuite-worker-"  # then the worker's pid: a dead worker's folder is known


def remove_stale_folders(base: Path) -> None:
    """Delete the folders of workers on this node that died without closing (killed, node lost)."""
    for folder in base.glob(f"{FOLDER_PREFIX}*-*"):
        pid = folder.name.removeprefix(FOLDER_PREFIX).split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive, and not our folder to judge
        return True
    return True


@dataclass(frozen=True)
class WorkerSetup:
    """What the driver tells every worker of a phase when it starts it."""

    cfg: RunConfig
    device: str  # "cuda" (the GPU Ray assigned, seen as cuda:0) or "cpu"
    dtype: str
    threads: int  # torch CPU threads: the CPUs Ray reserved for it
    gpu_share: float  # its fraction of one GPU (0 for a CPU worker): caps its GPU memory
    sweep_id: str
    evalsuite_commit: str | None  # the driver's, for each run's provenance
    scratch: Path | None = None  # where its folder goes (None: the node's temp dir)


@dataclass(frozen=True)
class WorkerInfo:
    node: str  # host name
    node_id: str
    pid: int
    gpus: str  # the GPU ids Ray gave it ("0"), or "cpu"


@dataclass
class Outcome:
    """One job's result: its record, or why its checkpoint could not be loaded."""

    record: JobRecord | None  # (the driver knows which job it asked for)
    failure: str | None = None  # a CheckpointError's message: reported, never retried
    freed: int = 0  # bytes --cleanup freed in this node's HF cache


class EvalWorker:
    def __init__(self, setup: WorkerSetup, files: dict[str, bytes]):
        self.setup = setup
        remove_stale_folders(setup.scratch or Path(tempfile.gettempdir()))
        self.folder = Path(tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{os.getpid()}-", dir=setup.scratch))
        unpack_files(files, self.folder)
        data_dir = self.folder / "tasks" if setup.cfg.data_dir is not None else None
        if data_dir is not None:  # the Arrow cache of data that lives in this folder goes with it
            os.environ["HF_DATASETS_CACHE"] = str(self.folder / "datasets-cache")
        self.session = _session(setup, self.folder)
        self._requests = _in_background(_prepare, replace(setup.cfg, data_dir=data_dir))
        self._loading = threading.Lock()  # one load at a time: transformers sets torch's default dtype per process
        self._turn = threading.Condition()
        self._next_ticket, self._free_since = 0, time.perf_counter()
        self._documents_sent = False  # what each document is goes with this worker's first record

    def info(self) -> WorkerInfo:
        import ray

        gpus = ",".join(str(g) for g in ray.get_gpu_ids()) or "cpu"
        return WorkerInfo(platform.node(), ray.get_runtime_context().get_node_id(), os.getpid(), gpus)

    def evaluate(self, job: Job, ticket: int) -> Outcome:
        """Load `job`'s checkpoint now; score it once every job of a lower ticket is done."""
        from evalsuite.sweep.job import evaluate_loaded

        started = time.perf_counter()
        loaded = self._load(job)
        loaded_at = time.perf_counter()
        with self._turn_of(ticket):
            if isinstance(loaded, CheckpointError):
                return Outcome(None, failure=str(loaded))
            if isinstance(loaded, BaseException):
                raise loaded  # every checkpoint would fail the same way: the driver stops
            waited = max(0.0, loaded_at - self._free_since)
            record = evaluate_loaded(self.setup.cfg, job, loaded, self.session,
                                     self._requests.result(), waited)
            if not self._documents_sent:  # with its first record (not its first ticket: that one may fail)
                record.documents = self._requests.result().documents()
                self._documents_sent = True
            del loaded
        freed = cleanup_job(self.setup.cfg, job)  # this node's HF cache
        record.times.wall_s = time.perf_counter() - started
        return Outcome(record, freed=freed)

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def _load(self, job: Job):
        """The checkpoint in host memory, or the exception that stopped it (raised in turn)."""
        from evalsuite.lmeval import checkpoints
        from evalsuite.sweep.plan import checkpoint_for

        try:
            with self._loading:
                return checkpoints.load_to_host(checkpoint_for(self.setup.cfg, job.model, job.step), self.setup.dtype)
        except Exception as exc:
            return exc

    @contextlib.contextmanager
    def _turn_of(self, ticket: int):
        """The device, for ticket N once tickets 0..N-1 are done (the driver numbers each job)."""
        with self._turn:
            self._turn.wait_for(lambda: self._next_ticket == ticket)
        try:
            yield
        finally:
            with self._turn:
                self._next_ticket += 1
                self._free_since = time.perf_counter()
                self._turn.notify_all()



def _session(setup: WorkerSetup, folder: Path):
    """The sweep's Session as this worker sees it: its device, its libraries' versions, its host,
    and the tokenizers from its folder (a model's own one from the Hub: through this node's cache)."""
    from evalsuite.lmeval import backends, checkpoints
    from evalsuite.sweep.job import Session

    backends.quiet_libraries()
    checkpoints.share_device(setup.device, setup.threads, setup.gpu_share)
    env = {**checkpoints.environment(setup.device), "evalsuite_commit": setup.evalsuite_commit}
    own = {model: backends.load_model_tokenizer(
               replace(where, local_dir=folder / own_tokenizer_folder(setup.cfg, model)) if where.local_dir else where)
           for model, where in setup.cfg.tokenizers.items()}
    return Session(setup.device, setup.dtype, backends.load_tokenizer(folder / "tokenizer"), env, setup.sweep_id, own)


def _prepare(cfg: RunConfig):
    from evalsuite.sweep.job import prepare_requests

    return prepare_requests(cfg)


def _in_background(fn, *args) -> Future:
    """fn(*args) on a daemon thread; the Future holds its result or its exception."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(fn(*args))
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=run, name="evalsuite-requests", daemon=True).start()
    return future
