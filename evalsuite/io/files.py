"""Reading result files evalsuite did not write: untrusted input, read defensively.

Only regular files under a size limit are read (a FIFO, a device or /dev/zero is refused without
blocking), JSON is parsed strictly (no duplicate keys, no 300-digit numbers, no nesting deep
enough to crash Python), and any problem is a SkipFile: that one file is skipped with one line
saying why, and the others go on.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from evalsuite import names

MAX_FILE_MB = 100  # default limit on each file read (--max-file-mb); lm-eval's largest are samples files
MAX_INT_DIGITS = 300  # longer integers in a file are an attack or garbage (and would overflow a float)


class SkipFile(Exception):
    """This one file cannot be imported; the message says why. The other files go on."""


def find_files(paths: list[str | Path], suffix: str = ".json") -> list[Path]:
    """The files named, and every *.json below the folders named (samples_*.jsonl ride along);
    with suffix ".jsonl", the .jsonl files named or below them (to name those no results file read).

    Symlinked folders are not followed (a link loop cannot stall the walk); anything named *.json
    that is not a folder is listed, so a FIFO or device is reported as skipped, never read.
    """
    found = []
    for path in map(Path, paths):
        if not path.is_dir():
            if suffix == ".json" or path.name.endswith(suffix):
                found.append(path)
            continue
        for folder, dirs, files in os.walk(path):
            dirs.sort()
            found.extend(Path(folder) / f for f in sorted(files) if f.endswith(suffix))
    return list(dict.fromkeys(found))


def read_file(path: Path, max_mb: float = MAX_FILE_MB) -> bytes:
    """A regular file's bytes, at most `max_mb` MB; SkipFile for anything else (FIFO, device, folder)."""
    max_bytes = int(max_mb * 2**20)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens at once instead of waiting
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise SkipFile(getattr(exc, "strerror", None) or str(exc)) from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SkipFile("not a regular file")
        data = file.read(max_bytes + 1)  # the size may change after fstat: count what is read
    if max(len(data), info.st_size) > max_bytes:
        raise SkipFile(f"larger than the {max_mb:g} MB limit (--max-file-mb)")
    return data


def parse_json(data: bytes | str):
    """Strict JSON: one value per key, integers of at most MAX_INT_DIGITS digits, and every
    failure (bad syntax, bad UTF-8, nesting too deep for Python) a SkipFile."""
    try:
        return json.loads(data, object_pairs_hook=_unique_keys, parse_int=_bounded_int)
    except RecursionError:
        raise SkipFile("not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError and the two hooks' errors
        raise SkipFile(f"not valid JSON ({names.printable(exc)[:200]})") from None


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    # Python keeps the last of two equal keys; another reader may keep the first: refuse both.
    mapping = {}
    for key, value in pairs:
        if key in mapping:
            raise ValueError(f"key {names.shown(key)} appears twice in one object")
        mapping[key] = value
    return mapping


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"a {len(text)}-digit integer")
    return int(text)


def read_json(path: Path, max_mb: float) -> tuple[dict, bytes]:
    if path.name.startswith("samples_") and path.suffix == ".jsonl":
        raise SkipFile("a samples file: it is imported with the results_*.json beside it")
    data = read_file(path, max_mb)
    return parse_json(data), data
