"""Whether a checkpoint folder a training run is writing is complete enough to read.

`inspect(folder)` looks at the files only (nothing is loaded): a config.json; weights
(model.safetensors, pytorch_model.bin, or a sharded index whose every shard is there); each
safetensors file as long as its own header says (a saver writes the header first, so a short file
is one still being written, a longer one is damaged); no temporary file that a saver renames at
the end. Its `signature` changes whenever any file's name, size or modification time does:
`evalsuite watch` reads a folder only when it is complete at two looks with one signature (the
sizes stopped changing), and reports one that stays unreadable once per signature.
"""

from __future__ import annotations

import hashlib
import json
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from evalsuite.catalog.models import TOKENIZER_FILES

COMPLETE, INCOMPLETE, UNREADABLE = "complete", "incomplete", "unreadable"
SINGLE_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
TEMP_SUFFIXES = (".tmp", ".temp", ".part", ".partial", ".incomplete", ".lock")
MAX_HEADER = 100 * 2**20  # safetensors' own limit on a header


@dataclass(frozen=True)
class Verdict:
    """What a look at a checkpoint folder found. `state`: complete, incomplete (still being
    written, as far as one can tell) or unreadable (a file that no further writing makes right);
    `reason` says which file and why, for anything but complete."""

    folder: Path
    state: str
    reason: str | None
    signature: str  # changes whenever any file in the folder does
    changed_at: float  # the newest file's modification time (seconds since the epoch)

    @property
    def complete(self) -> bool:
        return self.state == COMPLETE


def inspect(folder: Path, tokenizer: bool = False) -> Verdict:
    """The folder's state now (see the module's docstring). `tokenizer`: the checkpoint must bring
    its own (savers write it after the weights), so a folder without one is not complete yet."""
    signature, changed_at = _signature(folder)
    state, reason = _check(folder)
    if state == COMPLETE and tokenizer and not any((folder / name).is_file() for name in TOKENIZER_FILES):
        state, reason = INCOMPLETE, "no tokenizer yet"
    return Verdict(folder, state, reason, signature, changed_at)


def _signature(folder: Path) -> tuple[str, float]:
    """A digest of every file's relative name, size and modification time (sub-folders too), and
    the newest modification time."""
    digest, newest = hashlib.sha1(), 0.0
    try:
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        for path in files:
            stat = path.stat()
            newest = max(newest, stat.st_mtime)
            digest.update(f"{path.relative_to(folder)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    except OSError as exc:  # a file renamed or removed while we looked: another look will do
        digest.update(f"error {exc}".encode())
        newest = time.time()
    return digest.hexdigest(), newest


def _check(folder: Path) -> tuple[str, str | None]:
    if not folder.is_dir():
        return INCOMPLETE, "the folder is gone"
    temp = next((p.name for p in sorted(folder.iterdir()) if _is_temp(p.name)), None)
    if temp is not None:
        return INCOMPLETE, f"{temp} is a temporary file (the saver has not finished)"
    if not (folder / "config.json").is_file():
        return INCOMPLETE, "no config.json yet"
    try:
        json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return INCOMPLETE, "config.json is not complete JSON"
    index = next((folder / name for name in INDEXES if (folder / name).is_file()), None)
    if index is not None:
        return _check_index(folder, index)
    single = next((folder / name for name in SINGLE_WEIGHTS if (folder / name).is_file()), None)
    if single is None:
        return INCOMPLETE, f"no weights yet ({', '.join(SINGLE_WEIGHTS)} or a sharded index)"
    return _check_weights(single)


def _is_temp(name: str) -> bool:
    lower = name.lower()
    return lower.startswith(("tmp", ".tmp", "~")) or lower.endswith(TEMP_SUFFIXES)


def _check_index(folder: Path, index: Path) -> tuple[str, str | None]:
    """A sharded checkpoint: its index, then every shard the index names."""
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
        shards = sorted(set(weight_map.values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return INCOMPLETE, f"{index.name} is not a complete index"
    for name in shards:
        shard = folder / name
        if not shard.is_file():
            return INCOMPLETE, f"{name} (named by {index.name}) is not there yet"
        state, reason = _check_weights(shard)
        if state != COMPLETE:
            return state, reason
    return COMPLETE, None


def _check_weights(path: Path) -> tuple[str, str | None]:
    if path.suffix == ".safetensors":
        return _check_safetensors(path)
    try:  # a torch .bin is a zip: its last record (the end of the central directory) is written last
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(2)
            f.seek(max(0, size - 65_557))
            tail = f.read()
    except OSError as exc:
        return INCOMPLETE, f"{path.name}: {exc.strerror}"
    if head != b"PK":  # torch's legacy format (before 1.6): nothing tells; stable sizes decide (watch.py)
        return (COMPLETE, None) if size else (INCOMPLETE, f"{path.name} is empty")
    if b"PK\x05\x06" not in tail:
        return INCOMPLETE, f"{path.name} has no end record yet ({size:,} bytes so far)"
    return COMPLETE, None


def _check_safetensors(path: Path) -> tuple[str, str | None]:
    """The file's size against what its header declares: 8 bytes of header length, the JSON
    header, then the tensors, the last one ending at the largest data offset."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return INCOMPLETE, f"{path.name} has no header yet ({size} bytes)"
            (length,) = struct.unpack("<Q", head)
            if length > MAX_HEADER:
                return UNREADABLE, f"{path.name}: its header claims {length:,} bytes (not safetensors)"
            raw = f.read(length)
    except OSError as exc:
        return INCOMPLETE, f"{path.name}: {exc.strerror}"
    if len(raw) < length:
        return INCOMPLETE, f"{path.name} is {size:,} bytes, shorter than its header"
    try:
        header = json.loads(raw)
        end = max((int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"), default=0)
    except (ValueError, KeyError, TypeError, IndexError):
        return UNREADABLE, f"{path.name}: its header is not safetensors JSON"
    expected = 8 + length + end
    if size < expected:
        return INCOMPLETE, f"{path.name} is {size:,} of {expected:,} bytes"
    if size > expected:
        return UNREADABLE, f"{path.name} is {size:,} bytes, longer than the {expected:,} its header declares"
    return COMPLETE, None
