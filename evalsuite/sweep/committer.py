"""The store's single writer during a sweep: commits each evaluated checkpoint in the background,
and keeps it safe while another process holds the store.

`Committer(db, sweep_id, replace)` takes `JobRecord`s in order (`submit`) and writes each in its
own transaction (store.write_job) on one background thread, so checkpoint k is committed while
k+1 is evaluated. While the store is free, `submit` first waits for the previous commit, which
bounds memory to two checkpoints' records and makes a failed commit surface at the next submit
(or at `close`). While another process holds the store (DuckDB lets a reader block the writer:
an export, the dashboard, a notebook), `submit` returns at once: the records wait, `memory` of
them in memory and the rest on disk beside the store (spool.py), and are committed in order when
the store is free; `on_wait` hears who holds it ("PID 1234 (...)") and when it is free again
(None). Records a stopped or killed sweep left on disk are committed first.

Leaving the `with` block waits for the store up to `end_wait_s` (an error or Ctrl-C: only for
the commit in flight); whatever is still waiting then stays on disk for the next sweep on this
store, and `left` names it, with why. Whoever evaluates (this process, or workers elsewhere)
hands records here; nothing else writes the store during a sweep.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from evalsuite import store
from evalsuite.errors import EvalsuiteError
from evalsuite.records import JobRecord, JobTimes
from evalsuite.sweep import spool
from evalsuite.sweep.spool import Spool, Spooled

MEMORY_RECORDS = 2  # records kept in memory while the store is held; more go to the spool
RETRY_S = 1.0  # each try for the store's lock; between tries the committer says who holds it
END_WAIT_S = 3600.0  # at the end of a sweep, how long its last records wait for a held store


@dataclass(frozen=True)
class Committed:
    """One checkpoint in the store (without its rows): which run, which tasks, its times."""

    model: str
    step: int | None
    run_id: str
    tasks: list[str]  # tasks written (empty: another writer had stored them all meanwhile)
    times: JobTimes


@dataclass
class _Item:
    """A queued write: a record (in memory, or its spool file), or a small write (`note`)."""

    spooled: Spooled | None = None
    path: Path | None = None  # on disk
    note: Callable[[], object] | None = None
    keep: bool = False  # a note that must not be lost (the sweep's documents): spooled at the end
    recovered: bool = False  # left by an earlier sweep

    def label(self) -> str:
        kept = self.spooled or (spool.load(self.path) if self.path is not None else None)
        if not isinstance(kept, Spooled):
            return "the sweep's documents"
        record = kept.record
        step = f"step {record.run.step}" if record.run.step is not None else "(released)"
        return f"{record.run.model} {step}"


class Committer:
    def __init__(self, db: Path, sweep_id: str | None = None, replace: bool = False,
                 memory: int = MEMORY_RECORDS, end_wait_s: float | None = None,
                 on_wait: Callable[[str | None], None] | None = None):
        self.db, self.sweep_id, self.replace = db, sweep_id, replace
        self.memory, self.on_wait = memory, on_wait
        self.end_wait_s = END_WAIT_S if end_wait_s is None else end_wait_s
        self.committed: list[Committed] = []
        self.left: list[str] = []  # after close: each record not stored, and why
        self.recovered = 0  # records of an earlier sweep committed here
        self._queue: deque[_Item] = deque(_Item(path=p, recovered=True) for p in spool.orphans(db))
        self._cond = threading.Condition()
        self._error: BaseException | None = None
        self.holder: str | None = None  # who holds the store while this waits for it
        self._closing = self._stop = False
        self._spool = Spool(db)
        self._thread = threading.Thread(target=self._run, name="evalsuite-commit", daemon=True)
        self._thread.start()

    def submit(self, record: JobRecord) -> None:
        """Queue `record` for its own transaction: once the previous commit has finished while the
        store is free; at once while it is held (in memory, or on disk past `memory`)."""
        with self._cond:
            self._cond.wait_for(lambda: self._error is not None or not self._queue or self.holder is not None)
            self._raise()
            item = _Item(spooled=Spooled(record, self.replace, self.sweep_id))
            if sum(1 for i in self._queue if i.spooled is not None) >= self.memory:
                item = _Item(path=self._spool.put(item.spooled))  # type: ignore[arg-type]
            self._queue.append(item)
            self._cond.notify_all()

    def note(self, write: Callable[[], object], keep: bool = False) -> None:
        """Queue a small write (documents, a Ray worker's state) on the commit thread, in order with
        the commits, so that one thread writes the store; its error surfaces at the next wait.
        `keep`: a write that must not be lost (picklable: functools.partial of a store function),
        kept in the spool with the records when the store stays held."""
        with self._cond:
            self._queue.append(_Item(note=write, keep=keep))
            self._cond.notify_all()

    def wait(self) -> None:
        """Block until the queued writes are done while the store is free (at once while another
        process holds it: they wait here, and the caller goes on); raise the first error of one
        that failed."""
        with self._cond:
            self._cond.wait_for(lambda: self._error is not None or not self._queue or self.holder is not None)
            self._raise()

    def close(self, end_wait_s: float | None = None) -> None:
        """Commit what is queued, waiting up to `end_wait_s` for a held store; what still waits
        then stays in the spool, named in `left`."""
        deadline = time.monotonic() + (self.end_wait_s if end_wait_s is None else end_wait_s)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            while self._queue and self._error is None and self._thread.is_alive():
                if self.holder is not None and time.monotonic() >= deadline:
                    break
                self._cond.wait(0.2)
            self._stop = True
            self._cond.notify_all()
        self._thread.join()
        self._keep_leftovers()
        self._raise()

    def __enter__(self) -> Committer:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
            return
        try:  # already failing: store the finished checkpoint if the store is free, keep the first error
            self.close(end_wait_s=0)
        except Exception as commit_error:
            if exc is not None:
                exc.add_note(f"and committing the checkpoint before it failed too: {commit_error}")
        if self.left and exc is not None:  # the CLI's one line says what was not stored, and where it is
            exc.add_note(f"{len(self.left)} evaluated checkpoint(s) not stored yet: kept in "
                         f"{spool.spool_root(self.db)}, committed by the next 'evalsuite run' on this store")

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._closing or self._stop)
                if self._stop or not self._queue or self._error is not None:
                    return
                item = self._queue[0]
            done = self._attempt(item)
            with self._cond:
                if done:
                    self._queue.popleft()
                self._cond.notify_all()
                if self._error is not None:
                    return
            if not done:
                time.sleep(0.05)

    def _attempt(self, item: _Item) -> bool:
        """One try at the item's write: True when done (or failed: self._error), False when the
        store is held by another process."""
        try:
            with store.patience(RETRY_S):
                self._write(item)
        except store.StoreLocked as locked:
            self._held(locked.holder or "another process")
            return False
        except BaseException as exc:  # noqa: BLE001 -- surfaces in the caller's thread
            self._error = exc
            return True
        self._held(None)
        return True

    def _write(self, item: _Item) -> None:
        if item.note is not None:
            item.note()
            return
        spooled = item.spooled or spool.load(item.path)  # type: ignore[arg-type]
        if not isinstance(spooled, Spooled):  # a kept note
            spooled()
            item.path.unlink(missing_ok=True)  # type: ignore[union-attr]
            return
        started = time.perf_counter()
        record = spooled.record
        try:
            tasks = store.write_job(self.db, record, replace=spooled.replace, sweep_id=spooled.sweep_id)
        except EvalsuiteError as exc:
            if item.path is not None and not isinstance(exc, store.StoreLocked):
                raise EvalsuiteError(f"{exc}; the evaluated checkpoint waits in {item.path}") from None
            raise
        record.times.commit_s = time.perf_counter() - started
        if item.path is not None:
            item.path.unlink(missing_ok=True)
        if item.recovered:
            self.recovered += 1
        else:
            self.committed.append(Committed(record.run.model, record.run.step, record.run.run_id, tasks,
                                            record.times))

    def _held(self, holder: str | None) -> None:
        if holder is not None:
            holder = _described(holder)
        if holder != self.holder:
            with self._cond:
                self.holder = holder
                self._cond.notify_all()
            if self.on_wait is not None:
                self.on_wait(holder)

    def _keep_leftovers(self) -> None:
        """What is still queued goes to (or stays in) the spool, each named in `left`."""
        why = f"the store is held by {self.holder}" if self.holder else "the sweep stopped before its commit"
        try:
            for item in self._queue:
                if item.note is not None and not item.keep:
                    continue  # a worker's state: only news while the sweep runs
                if item.path is None:
                    item.path = self._spool.put(item.note or item.spooled)  # type: ignore[arg-type]
                if item.note is not None:
                    continue  # kept quietly: committed with the records it belongs to
                self.left.append(f"{item.label()}: not stored yet ({why}); kept in {item.path.parent}, "
                                 "committed by the next 'evalsuite run' on this store")
        finally:
            self._queue.clear()
            self._spool.close()
            spool.release_orphans(self.db)


def commit_left_over(db: Path) -> int:
    """Commit what stopped sweeps left in the spool (before planning, so nothing is evaluated
    twice); returns how many checkpoints. Nothing to do: no store access at all."""
    if not spool.spool_root(db).is_dir():
        return 0
    committer = Committer(db)
    committer.close()
    return committer.recovered


def _described(holder: str) -> str:
    """'PID 1234' with its command line where this machine can tell."""
    pid = holder.removeprefix("PID ")
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            command = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except (OSError, ValueError):
        return holder
    command = " ".join(command.split())  # one line, whatever the command line holds
    return f"{holder} ({command[:80]})" if command else holder
