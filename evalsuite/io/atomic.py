"""Every output file evalsuite writes is whole or untouched: written to a temporary file beside it
and renamed into place once complete, so a full disk, an error or a stop leaves the previous file
as it was and no temporary file behind. A failure is one EvalsuiteError naming the disk.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evalsuite.errors import EvalsuiteError

FULL = (errno.ENOSPC, errno.EDQUOT)  # the disk (or the user's quota) is full
TOO_LARGE = errno.EFBIG  # past the largest file this process may write (ulimit -f)


def temp_beside(path: Path, kind: str = "partial") -> Path:
    """A hidden, unique name in the same folder (so the rename is atomic, on the same disk)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.{kind}")


@contextmanager
def replacing(path: Path, mode: str = "w") -> Iterator:
    """An open temporary file beside `path`; renamed onto `path` when the block ends, removed when
    it raises (an error, Ctrl-C, a stop)."""
    temp = temp_beside(path)
    try:
        with open(temp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except OSError as exc:
        raise EvalsuiteError(cannot_write(path, exc)) from None
    finally:
        temp.unlink(missing_ok=True)


def write_text(path: Path, text: str, mkdir: bool = False) -> None:
    """`text` into `path`, whole or not at all (the folder made first with mkdir)."""
    try:
        if mkdir:
            path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EvalsuiteError(cannot_write(path, exc)) from None
    with replacing(path) as f:
        f.write(text)


@contextmanager
def scratch_folder(beside: Path, kind: str) -> Iterator[Path]:
    """A temporary folder beside `beside` (DuckDB's spill, an export's pieces), removed whatever happens."""
    folder = temp_beside(beside, kind)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def cannot_write(path: Path, exc: OSError) -> str:
    """One line for a failed write of `path`: a full disk named as the disk it is on."""
    if exc.errno in FULL:
        return f"cannot write {path}: no space left on {disk_of(path)}"
    if exc.errno == TOO_LARGE:
        return f"cannot write {path}: the file would be larger than this process may write (ulimit -f)"
    return f"cannot write {path}: {exc.strerror or exc}"


def disk_of(path: Path) -> Path:
    """The mount point `path` is on (the disk a person would clear)."""
    where = Path(os.path.abspath(path)).parent
    while not os.path.ismount(where) and where != where.parent:
        where = where.parent
    return where
