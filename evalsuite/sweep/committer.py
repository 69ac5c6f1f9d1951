"""The store's single writer during a sweep: commits each evaluated checkpoint in the background.

`Committer(db, sweep_id, replace)` takes `JobRecord`s in order (`submit`) and writes each in its
own transaction (store.write_job) on one background thread, so checkpoint k is committed while
k+1 is evaluated. At most one commit is in flight: `submit` first waits for the previous one,
which bounds memory to two checkpoints' records and makes a failed commit surface at the next
submit (or at `close`). Leaving the `with` block, even on an error or Ctrl-C, waits for the
commit in flight: it holds a finished checkpoint. Whoever evaluates (this process, or workers
elsewhere) hands records here; nothing else writes the store during a sweep.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from evalsuite import store
from evalsuite.records import JobRecord, JobTimes


@dataclass(frozen=True)
class Committed:
    """One checkpoint in the store (without its rows): which run, which tasks, its times."""

    model: str
    step: int | None
    run_id: str
    tasks: list[str]  # tasks written (empty: another writer had stored them all meanwhile)
    times: JobTimes


class Committer:
    def __init__(self, db: Path, sweep_id: str | None = None, replace: bool = False):
        self.db, self.sweep_id, self.replace = db, sweep_id, replace
        self.committed: list[Committed] = []
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evalsuite-commit")
        self._pending: Future | None = None
        self._notes: list[Future] = []

    def submit(self, record: JobRecord) -> None:
        """Queue `record` for its own transaction, once the previous commit has finished."""
        self.wait()
        self._pending = self._pool.submit(self._commit, record)

    def note(self, write: Callable[[], object]) -> None:
        """Queue a small write (a Ray worker's state) on the commit thread, in order with the
        commits, so that one thread writes the store; its error surfaces at the next wait."""
        self._notes.append(self._pool.submit(write))

    def wait(self) -> None:
        """Block until the commit in flight (if any) is done; raise its error if it failed."""
        pending, self._pending = self._pending, None
        if pending is not None:
            self.committed.append(pending.result())
        notes, self._notes = self._notes, []
        for note in notes:
            note.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> Committer:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
            return
        try:  # already failing: still store the finished checkpoint, but keep the first error
            self.close()
        except Exception as commit_error:
            if exc is not None:
                exc.add_note(f"and committing the checkpoint before it failed too: {commit_error}")

    def _commit(self, record: JobRecord) -> Committed:
        started = time.perf_counter()
        tasks = store.write_job(self.db, record, replace=self.replace, sweep_id=self.sweep_id)
        record.times.commit_s = time.perf_counter() - started
        return Committed(record.run.model, record.run.step, record.run.run_id, tasks, record.times)
