"""Every output evalsuite writes is whole or untouched: a full disk or a stop leaves the previous
file as it was and nothing else behind (no temporary file, no spill folder), in one line naming
the disk. The full disk is a real one: a 64 KiB tmpfs, where this machine lets a test mount it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from evalsuite import store
from evalsuite.cli import main

from conftest import evalsuite_cmd

PREVIOUS = "the previous, good output\n"


@pytest.fixture
def small_disk(tmp_path):
    """A folder on a 64 KiB file system of its own (skipped where the machine cannot mount one)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("this machine cannot mount a small tmpfs here (needs root)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def with_samples(db, rows: int):
    """A store with `rows` samples over 7 models (the samples export reads a model and task at a time)."""
    store.init(db, seed=False)
    with store.transaction(db) as con:
        con.execute(f"""INSERT INTO samples (run_id, model, step, task, shots, doc_id, target, correct,
                        correct_norm, loglikelihoods, is_greedy)
                        SELECT 'run' || (i % 7), 'model-' || (i % 7), i // 1000, 'piqa', 0, i,
                               0, true, NULL, [-1.5, -2.5], [true, false] FROM range({rows}) t(i)""")
    return db


def left_beside(folder) -> list[str]:
    return sorted(os.listdir(folder))


def test_a_full_disk_keeps_the_previous_json_and_names_the_disk(tmp_path, small_disk, capsys):
    db = store.init(tmp_path / "s.duckdb")  # seeded: every published score, far more than 64 KiB of JSON
    out = small_disk / "scores.json"
    out.write_text(PREVIOUS)
    assert main(["export", "--db", str(db), "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"evalsuite: error: cannot write {out}: no space left on {small_disk}\n"
    assert out.read_text() == PREVIOUS and left_beside(small_disk) == ["scores.json"]


def test_a_full_disk_leaves_lm_eval_files_whole_or_as_they_were(tmp_path, small_disk, capsys):
    db = store.init(tmp_path / "s.duckdb")
    old = small_disk / "pythia-160m" / "results_step143000_0shot_published.json"
    old.parent.mkdir()
    old.write_text(PREVIOUS)
    assert main(["export", "--db", str(db), "--format", "lm-eval", "--out", str(small_disk)]) == 2
    assert "no space left on" in capsys.readouterr().err
    for path in small_disk.rglob("*"):
        assert not path.name.startswith("."), path  # no temporary file left
        if path.is_file() and path != old:
            json.loads(path.read_text())  # a file written is whole
    text = old.read_text()
    assert text == PREVIOUS or json.loads(text)["results"]  # as it was, or the new one whole


def test_a_full_disk_during_a_samples_export_is_one_line_and_leaves_nothing(tmp_path, small_disk, capsys):
    db = with_samples(tmp_path / "s.duckdb", 20_000)
    out = small_disk / "samples.jsonl"
    out.write_text(PREVIOUS)
    assert main(["export", "--db", str(db), "--format", "samples", "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"evalsuite: error: cannot write {out}: no space left on {small_disk}\n"
    assert out.read_text() == PREVIOUS and left_beside(small_disk) == ["samples.jsonl"]


def test_samples_export_is_the_whole_store_in_order(tmp_path, capsys):
    """Read a (model, task) at a time in short connections, joined into one file in the store's order."""
    import pyarrow.parquet as pq

    db = with_samples(tmp_path / "s.duckdb", 5_000)
    for name in ("s.jsonl", "s.parquet"):
        assert main(["export", "--db", str(db), "--format", "samples", "--out", str(tmp_path / name)]) == 0
    assert capsys.readouterr().out.count("wrote 5000 samples") == 2
    lines = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    table = pq.read_table(tmp_path / "s.parquet").to_pylist()
    keys = [(r["model"], r["step"], r["run_id"], r["doc_id"]) for r in lines]
    assert keys == sorted(keys) and len(set(keys)) == 5_000
    assert [(r["model"], r["doc_id"]) for r in table] == [(r["model"], r["doc_id"]) for r in lines]
    assert left_beside(tmp_path) == ["s.duckdb", "s.jsonl", "s.parquet"]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_samples_export_leaves_nothing_and_says_one_line(tmp_path, stop):
    db = with_samples(tmp_path / "s.duckdb", 3_000_000)
    out = tmp_path / "out" / "samples.jsonl"
    out.parent.mkdir()
    out.write_text(PREVIOUS)
    proc = subprocess.Popen(evalsuite_cmd("export", "--db", str(db), "--format", "samples", "--out", str(out)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(left_beside(out.parent)) < 2 and time.monotonic() < deadline:  # it has started writing
        time.sleep(0.01)
    time.sleep(0.2)
    proc.send_signal(stop)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err == "evalsuite: interrupted; nothing was written; an earlier output file is as it was\n"
    assert out.read_text() == PREVIOUS and left_beside(out.parent) == ["samples.jsonl"]


def test_a_full_disk_keeps_the_previous_items_file(tmp_path, small_disk, capsys):
    import factory

    db = store.init(tmp_path / "s.duckdb", seed=False)
    for step in (1000, 2000):
        store.write_job(db, factory.job(step=step, samples=3000))
    out = small_disk / "items.json"
    out.write_text(PREVIOUS)
    argv = ["items", "--db", str(db), "--model", "pythia-70m", "--task", "piqa", "--format", "json", "--out", str(out)]
    assert main(argv) == 2
    assert capsys.readouterr().err == f"evalsuite: error: cannot write {out}: no space left on {small_disk}\n"
    assert out.read_text() == PREVIOUS and left_beside(small_disk) == ["items.json"]
    assert main([*argv[:-1], str(tmp_path / "items.json")]) == 0  # the same, where there is room
    assert len(json.loads((tmp_path / "items.json").read_text())) == 3000


def test_a_write_cut_short_by_the_file_size_limit_keeps_the_previous_json(tmp_path):
    """Where no file system can be mounted: `ulimit -f` makes the write fail as a full disk does."""
    import resource

    db = store.init(tmp_path / "s.duckdb")
    out = tmp_path / "out" / "scores.json"
    out.parent.mkdir()
    out.write_text(PREVIOUS)

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    result = subprocess.run(evalsuite_cmd("export", "--db", str(db), "--out", str(out)), capture_output=True,
                            text=True, preexec_fn=small_files, timeout=300)
    assert result.returncode == 2, result.stderr
    assert result.stderr == (f"evalsuite: error: cannot write {out}: the file would be larger than this process "
                             "may write (ulimit -f)\n")
    assert out.read_text() == PREVIOUS and left_beside(out.parent) == ["scores.json"]
