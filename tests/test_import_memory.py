"""Import memory is bounded by a small multiple of the largest file, whatever the number of files:
the importer writes in batches bounded by bytes read, never holding every file's documents.
(Issue 20, item 7: 1 file of 20 MB peaked at 0.4 GB, 15 such files at 3.2 GB.) Each import runs in
its own process, its peak RSS read from the kernel (benchmarks/bench_import.py measures the same
against main's importer)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _bench():
    spec = importlib.util.spec_from_file_location("bench_import", ROOT / "benchmarks" / "bench_import.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_many_files_take_no_more_memory_than_one(tmp_path):
    bench = _bench()
    files = bench.make_files(tmp_path / "files", 8, 12)  # 96 MB of samples in all
    one = bench.peak(ROOT, files[:1], tmp_path / "one.duckdb")
    many = bench.peak(ROOT, files, tmp_path / "many.duckdb")
    assert many["samples"] == 8 * one["samples"] and many["skipped"] == 0
    assert many["rss_mb"] < 1.25 * one["rss_mb"], (one, many)
