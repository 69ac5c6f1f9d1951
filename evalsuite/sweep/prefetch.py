"""Overlap checkpoint loading with evaluation.

`Prefetcher(load_fn, items, ahead=1)`: iterate it to get `(item, result)` in the order of `items`,
where `result` is `load_fn(item)` or the exception it raised (returned, not raised, so that one
bad checkpoint does not end a sweep). While the caller works on one item, the next `ahead` items
are loaded on a background thread, so download + load time hides behind evaluation. The first
loads start as soon as the loop begins (`iter(prefetcher)`), so a caller can do other start-up
work before taking the first result. At most `ahead + 1` results are alive at once (the one in
use and the ones loading): with ahead=1, two models, so `load_fn` should leave its result on the
host (lmeval.checkpoints.load_to_host) and the caller move it to the accelerator after releasing
the previous one. Leaving the loop early (break, exception, Ctrl-C) skips loads not yet started;
a load already running finishes on its (daemon) thread and is dropped, and never delays the
process's exit.
"""

from __future__ import annotations

import itertools
import queue
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any


class _Slot:
    """One item's load: filled in by the worker thread, waited for by the caller."""

    def __init__(self, item: Any):
        self.item, self.result, self.done = item, None, threading.Event()


class Prefetcher:
    """`for item, result in Prefetcher(load, items):` with the next load already under way."""

    def __init__(self, load_fn: Callable[[Any], Any], items: Iterable[Any], ahead: int = 1):
        if ahead < 1:
            raise ValueError("ahead must be at least 1")
        self.load_fn, self.items, self.ahead = load_fn, list(items), ahead

    def __len__(self) -> int:
        return len(self.items)

    def _load(self, item: Any) -> Any:
        try:
            return self.load_fn(item)
        except Exception as exc:  # handed to the caller with its item, in order
            return exc

    def _work(self, todo: queue.SimpleQueue, stop: threading.Event) -> None:
        while (slot := todo.get()) is not None and not stop.is_set():
            slot.result = self._load(slot.item)
            slot.done.set()
            del slot  # while waiting for the next item, hold nothing the caller has released

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        """Start the worker and the first `ahead` loads now; hand results out in order."""
        # A daemon thread, not a ThreadPoolExecutor: the interpreter joins executor threads at
        # exit, so Ctrl-C would wait for an in-flight download; a daemon thread is abandoned.
        todo: queue.SimpleQueue = queue.SimpleQueue()
        stop = threading.Event()
        threading.Thread(target=self._work, args=(todo, stop), name="evalsuite-prefetch", daemon=True).start()
        pending: deque[_Slot] = deque()
        upcoming = iter(self.items)
        for item in itertools.islice(upcoming, self.ahead):  # each hand-out starts one more
            _submit(pending, todo, item)
        handout = self._hand_out(pending, upcoming, todo, stop)
        weakref.finalize(handout, _stop, todo, stop)  # a loop never started still ends the worker
        return handout

    def _hand_out(self, pending: deque, upcoming: Iterator, todo: queue.SimpleQueue,
                  stop: threading.Event) -> Iterator[tuple[Any, Any]]:
        try:
            while pending:
                slot = pending.popleft()
                slot.done.wait()
                result, slot.result = slot.result, None
                nxt = next(upcoming, _END)
                if nxt is not _END:  # start the next load before handing this one out
                    _submit(pending, todo, nxt)
                yield slot.item, result
                del result  # drop our reference: the caller decides how long a model lives
        finally:
            _stop(todo, stop)


def _submit(pending: deque, todo: queue.SimpleQueue, item: Any) -> None:
    pending.append(_Slot(item))
    todo.put(pending[-1])


def _stop(todo: queue.SimpleQueue, stop: threading.Event) -> None:
    """Loads not yet started are skipped; one running finishes and is dropped."""
    stop.set()
    todo.put(None)


_END = object()
