"""Overlap checkpoint loading with evaluation, and free the HF cache behind a sweep.

Owns two small things the sweep uses between checkpoints:

- `Prefetcher(load_fn, items, ahead=1)`: iterate it to get `(item, result)` in the order of
  `items`, where `result` is `load_fn(item)` or the exception it raised (returned, not raised,
  so that one bad checkpoint does not end a sweep). While the caller works on one item, the next
  `ahead` items are loaded on a background thread, so download + load time hides behind
  evaluation. At most `ahead + 1` results are alive at once (the one in use and the ones
  loading): with ahead=1, two models. Leaving the loop early (break, exception, Ctrl-C) cancels
  loads not yet started; a load already running finishes on its thread and is dropped.
- `cleanup_revision(repo_id, revision, cache_dir=None) -> int`: delete one revision (a ref such
  as "step1000", or a commit hash) of a model repo from the Hugging Face hub cache, through
  huggingface_hub's `scan_cache_dir().delete_revisions()`: its snapshot and refs go, blobs go
  only when no other cached revision uses them. Returns the bytes freed; 0 when the revision
  (or the cache) is not there.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator


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

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evalsuite-prefetch")
        pending: deque[tuple[Any, Future]] = deque()
        upcoming = iter(self.items)
        try:
            for item in upcoming:  # the first `ahead` loads; each hand-out starts one more
                pending.append((item, pool.submit(self._load, item)))
                if len(pending) == self.ahead:
                    break
            while pending:
                item, future = pending.popleft()
                result = future.result()
                nxt = next(upcoming, _END)
                if nxt is not _END:  # start the next load before handing this one out
                    pending.append((nxt, pool.submit(self._load, nxt)))
                yield item, result
                del result  # drop our reference: the caller decides how long a model lives
        finally:
            pool.shutdown(wait=False, cancel_futures=True)


_END = object()


def cleanup_revision(repo_id: str, revision: str, cache_dir: str | Path | None = None) -> int:
    """Delete `repo_id`@`revision` from the HF hub cache; other revisions keep shared blobs."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir(cache_dir)
    except CacheNotFound:
        return 0
    hashes = [
        rev.commit_hash
        for repo in info.repos if repo.repo_id == repo_id and repo.repo_type == "model"
        for rev in repo.revisions if rev.commit_hash == revision or revision in rev.refs
    ]
    if not hashes:
        return 0
    strategy = info.delete_revisions(*hashes)
    strategy.execute()
    return strategy.expected_freed_size
