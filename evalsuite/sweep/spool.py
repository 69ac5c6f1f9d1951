"""Evaluated checkpoints waiting on disk for the store: `<db>.spool/`, beside the store.

While another process holds the store (a reader: an export, the dashboard, a notebook), a sweep
keeps evaluating; the committer keeps a few records in memory and hands the rest here. Each
process has its own folder `<db>.spool/<pid>-<id>/`, locked (flock) while it lives, and each
record is one file written atomically (a temporary name, then a rename), deleted once committed.
A folder whose lock nobody holds belongs to a sweep that was stopped or killed: the next sweep on
the store commits its records first (a record stored already is dropped by store.write_job, so
nothing is counted twice) and removes the folder.
"""

from __future__ import annotations

import errno
import fcntl
import os
import pickle
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from evalsuite.errors import EvalsuiteError
from evalsuite.records import JobRecord


@dataclass
class Spooled:
    """One evaluated checkpoint's record and how it is to be committed."""

    record: JobRecord
    replace: bool  # --force
    sweep_id: str | None


def spool_root(db: Path) -> Path:
    return db.with_name(db.name + ".spool")


class Spool:
    """This process's folder of waiting records, made on the first `put`."""

    def __init__(self, db: Path):
        self.folder = spool_root(db) / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._lock: int | None = None
        self._count = 0

    def put(self, item: Spooled | Callable[[], object]) -> Path:
        """Write one record (or a write that must not be lost: a picklable callable, such as the
        sweep's documents) to its own file, whole or not at all; a full disk is one error naming it."""
        try:
            if self._lock is None:
                self.folder.mkdir(parents=True, exist_ok=True)
                self._lock = _locked(self.folder / "lock")
            self._count += 1
            path = self.folder / f"{self._count:08d}.pkl"
            _write_atomic(path, pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError as exc:
            raise EvalsuiteError(_disk_problem(exc, self.folder)) from None
        return path

    def close(self) -> None:
        """Release the folder: removed when no record waits in it, else left for the next sweep."""
        if self._lock is None:
            return
        if not list(self.folder.glob("*.pkl")):
            shutil.rmtree(self.folder, ignore_errors=True)
            _remove_if_empty(self.folder.parent)
        os.close(self._lock)
        self._lock = None


# What a spooled file may name: evalsuite's records and the one write a sweep keeps (its
# documents). A spool folder is beside a store, which may have come from anyone: pickle would
# otherwise call whatever a crafted file names when a sweep recovers it.
_ALLOWED = {("functools", "partial"), ("evalsuite.store.writes", "write_documents"),
            ("evalsuite.sweep.spool", "Spooled"), ("datetime", "datetime"), ("pathlib", "PosixPath"),
            ("pathlib._local", "PosixPath"), ("numpy", "dtype"), ("numpy._core.multiarray", "scalar")}


class _RecordsOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED or (module == "evalsuite.records" and name[:1].isupper()):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it names {module}.{name}")


def load(path: Path) -> Spooled | Callable[[], object]:
    """A spooled record or kept write; a file evalsuite did not write is refused, never run."""
    try:
        with open(path, "rb") as f:
            return _RecordsOnly(f).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ValueError, TypeError) as exc:
        raise EvalsuiteError(f"cannot read {path}: not an evaluated checkpoint evalsuite kept ({exc}); "
                             "move it away to go on") from None


def orphans(db: Path) -> Iterator[Path]:
    """Records left by sweeps that are gone (their folder's lock is free), oldest first; each
    folder stays locked by this process until `release_orphans`."""
    root = spool_root(db)
    if not root.is_dir():
        return
    for folder in sorted(root.iterdir(), key=lambda p: p.stat().st_mtime):
        if not folder.is_dir():
            continue
        try:
            fd = _locked(folder / "lock", wait=False)
        except BlockingIOError:
            continue  # a live sweep's
        _ADOPTED.setdefault(db, []).append((folder, fd))
        yield from sorted(folder.glob("*.pkl"))


_ADOPTED: dict[Path, list[tuple[Path, int]]] = {}


def release_orphans(db: Path) -> None:
    """Remove the adopted folders whose records are all committed; unlock the others."""
    for folder, fd in _ADOPTED.pop(db, []):
        if not list(folder.glob("*.pkl")):
            shutil.rmtree(folder, ignore_errors=True)
        os.close(fd)
    _remove_if_empty(spool_root(db))


def _locked(path: Path, wait: bool = True) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write_atomic(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def _disk_problem(exc: OSError, where: Path) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return f"no space left on {where} to keep an evaluated checkpoint while the store is held"
    return f"cannot keep an evaluated checkpoint in {where}: {exc.strerror or exc}"
