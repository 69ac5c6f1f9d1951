"""One phase of a Ray sweep (sweep/cluster.py): its workers, the queue of jobs, what comes back.

Each worker keeps IN_FLIGHT jobs (one scored, the next loading); a finished job's record goes to
the sweep's Committer (the store's one writer), a CheckpointError is reported once, and a worker
that dies gives its jobs back to the front of the queue while a replacement starts in its place.
A death is charged to the job the worker was running (a job charged MAX_ATTEMPTS times is
reported instead): with two in flight it is not known which, so neither is charged and each runs
alone from then on; a healthy checkpoint that shared a worker with one whose loading kills it is
evaluated (issue 20). Every worker's state goes into
the store's `workers` table through the Committer's thread.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from evalsuite import store
from evalsuite.errors import EvalsuiteError
from evalsuite.records import WorkerState
from evalsuite.sweep import packing
from evalsuite.sweep.committer import Committer
from evalsuite.sweep.config import RunConfig
from evalsuite.sweep.job import say_notes
from evalsuite.sweep.local import Failure
from evalsuite.sweep.plan import Job

if TYPE_CHECKING:
    from evalsuite.sweep.cluster import RayOptions, RaySweepReport
    from evalsuite.sweep.cluster_worker import WorkerSetup

IN_FLIGHT = 2  # jobs per worker: one scored, the next one loading meanwhile
MAX_ATTEMPTS = 3  # a job whose worker died this many times is reported, not run again
WORKER_CPUS = 1  # CPUs Ray reserves for each worker, which are its torch threads


@dataclass
class Shared:
    """What every phase of one Ray sweep uses."""

    ray: Any
    cfg: RunConfig
    opts: RayOptions
    setup: WorkerSetup  # every worker's, but its share of a GPU (per phase)
    files: Any  # the object ref of ray_worker.pack_files(cfg)
    committer: Committer
    bar: Any
    report: RaySweepReport
    say: Callable[[str], None]
    numbers: itertools.count = field(default_factory=itertools.count)  # worker numbers, sweep-wide
    documents_written: bool = False  # the sweep's documents, written once from the first worker's
    said: set[str] = field(default_factory=set)  # the records' notes said so far (each said once)


@dataclass
class _Worker:
    handle: Any
    state: WorkerState
    jobs: list[Job] = field(default_factory=list)  # in flight, oldest (the one scored now) first
    tickets: int = 0


class Pool:
    """One phase: its workers, the jobs queued and in flight, and what comes back from them."""

    def __init__(self, shared: Shared, jobs: list[Job], phase: packing.Phase):
        from evalsuite.sweep.cluster_worker import EvalWorker

        self.shared, self.ray, self.report, self.queue = shared, shared.ray, shared.report, deque(jobs)
        share = 1 / phase.per_gpu if phase.per_gpu else 0.0
        self.setup = replace(shared.setup, gpu_share=share)
        self.gpu_label = f" (1/{phase.per_gpu})" if phase.per_gpu else ""
        self.actor = self.ray.remote(EvalWorker).options(
            num_cpus=WORKER_CPUS, num_gpus=share, max_concurrency=IN_FLIGHT, max_restarts=0,
            scheduling_strategy="SPREAD")  # over nodes first: more disks, links and host memory
        self.size = _worker_count(self.ray, phase, len(jobs), shared.opts)
        self.waiting: dict[Any, tuple[_Worker, Job | None]] = {}  # result ref -> worker, job (None: its info)
        self.workers: list[_Worker] = []
        self.deaths: Counter = Counter()  # per job: deaths of its worker while it ran alone
        # jobs in flight at a death beside another: each runs alone from then on
        self.alone: set[tuple[str, int | None]] = set()

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
            if isinstance(exc.cause, EvalsuiteError):
                raise exc.cause from None
            raise
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
            if worker.jobs and (_key(self.queue[0]) in self.alone or _key(worker.jobs[0]) in self.alone):
                break  # a suspect runs alone; the next one waits for it, not beside it
            job = self.queue.popleft()
            self.waiting[worker.handle.evaluate.remote(job, worker.tickets)] = (worker, job)
            worker.tickets += 1
            worker.jobs.append(job)
        first = worker.jobs[0] if worker.jobs else None
        worker.state = replace(worker.state, state="evaluating" if first else "idle",
                               model=first.model if first else None, step=first.step if first else None)
        self._note(worker)

    def _done(self, worker: _Worker, job: Job, outcome) -> None:
        worker.jobs.remove(job)
        if outcome.record is None:  # this checkpoint only: reported once, never retried
            self.report.failed.append(Failure(job.model, job.step, outcome.failure))
        else:
            self.shared.committer.submit(self._without_documents(outcome.record))
            say_notes(outcome.record, self.shared.said, self.shared.say)
            worker.state = replace(worker.state, done=worker.state.done + 1)
            if outcome.freed:
                self.shared.say(f"removed {job.model} step {job.step} from the HF cache of {worker.state.node} "
                                f"({outcome.freed / 2**20:.0f} MiB)")
        self.shared.bar.update()

    def _without_documents(self, record):
        """The record, its documents (a worker's first record carries them) written apart, once a
        sweep and whole, as a local sweep writes them: the record's commit would keep only the
        documents of the tasks it stores."""
        if not record.documents:
            return record
        if not self.shared.documents_written:
            write = functools.partial(store.write_documents, self.shared.cfg.db, record.documents)
            self.shared.committer.note(write, keep=True)  # kept in the spool while the store is held
            self.shared.documents_written = True
        return replace(record, documents=[])

    def _lost(self, worker: _Worker, exc) -> None:
        """A dead worker's jobs go back to the front of the queue; a replacement takes its place.
        The death is charged to the job it was running: with one job in flight, that one; with
        two, neither (one of them killed it, or neither did), and each runs alone from then on, so
        that its next death, if any, is its own."""
        if exc.actor_init_failed:  # it could not even start: every replacement would fail alike
            raise EvalsuiteError(f"a Ray worker could not start: {_last_line(str(exc))}") from None
        self.ray.kill(worker.handle)  # an unreachable one may still be running: no second result
        self.waiting = {r: (w, j) for r, (w, j) in self.waiting.items() if w is not worker}
        charged = worker.jobs[0] if len(worker.jobs) == 1 else None
        for job in reversed(worker.jobs):
            if _key(job) not in self.report.requeued:
                self.report.requeued.append(_key(job))
            if charged is None:
                self.alone.add(_key(job))
            elif self._charge(job):
                continue
            self.queue.appendleft(job)
        self.shared.say(self._loss_line(worker, charged))
        worker.jobs = []
        worker.state = replace(worker.state, state="lost", model=None, step=None)
        self._note(worker)
        self.workers.remove(worker)
        if self.queue:
            self._start()

    def _charge(self, job: Job) -> bool:
        """One more death of `job`'s worker while it ran alone; True: the last one allowed."""
        self.deaths[_key(job)] += 1
        if self.deaths[_key(job)] < MAX_ATTEMPTS:
            return False
        self.report.failed.append(Failure(job.model, job.step, f"its worker died {MAX_ATTEMPTS} times "
                                                               "while it loaded or scored this checkpoint"))
        self.shared.bar.update()
        return True

    def _loss_line(self, worker: _Worker, charged: Job | None) -> str:
        lost = f"lost Ray worker {worker.state.worker} on {worker.state.node or 'its node'}"
        if charged is not None:
            deaths = self.deaths[_key(charged)]
            given_up = "; not run again" if deaths >= MAX_ATTEMPTS else ""
            return (f"{lost} while it ran {charged.model} step {charged.step} "
                    f"(death {deaths} of {MAX_ATTEMPTS} for it{given_up})")
        if worker.jobs:
            return f"{lost} with {_jobs(worker.jobs)} in flight: each runs again, alone"
        return f"{lost} with no job in flight"

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


def _key(job: Job) -> tuple[str, int | None]:
    return job.model, job.step


def _jobs(jobs: list[Job]) -> str:
    return " and ".join(f"{job.model} step {job.step}" for job in jobs)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "unknown error"
