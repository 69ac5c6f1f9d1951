"""The store: atomic job commits, no double counting, a reader beside a writer, bad paths, and store
files that cannot be used (corrupt, truncated, not DuckDB, locked, read-only, on a full disk), each
named in one line within seconds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager

import pytest

from evalsuite import store
from evalsuite.cli import main
from evalsuite.paths import PUBLISHED_RAW_DIR

import factory

PUBLISHED_ONE = PUBLISHED_RAW_DIR / "pythia-v1/pythia-160m/zero-shot/160m_step1000.json"

KEY = store.JobKey(model="pythia-70m", step=1000, shots=0, doc_limit=None, dtype="float32")


def _job(run_id: str, value: float = 0.5, tasks=("piqa", "sciq")):
    return factory.job(rows=factory.tasks(*tasks, value=value), run_id=run_id, n=100)


def _local(db):
    return store.read_df(db, "SELECT * FROM scores WHERE source = 'local' ORDER BY task")


def test_a_second_writer_of_the_same_job_adds_nothing(tmp_path):
    db = store.init(tmp_path / "s.duckdb", seed=False)
    assert store.write_job(db, _job("a")) == ["piqa", "sciq"]
    assert store.write_job(db, _job("b", 0.9)) == []
    assert store.write_job(db, _job("c", 0.7, tasks=("piqa", "winogrande"))) == ["winogrande"]
    scores = _local(db)
    assert list(scores.task) == ["piqa", "sciq", "winogrande"] and list(scores.value) == [0.5, 0.5, 0.7]
    assert store.stored_tasks(db, KEY) == {"piqa", "sciq", "winogrande"}
    assert store.stored_tasks(db, store.JobKey("pythia-70m", 1000, 5, None, "float32")) == set()


def test_replace_swaps_rows(tmp_path):
    db = store.init(tmp_path / "s.duckdb", seed=False)
    store.write_job(db, _job("a"))
    assert store.write_job(db, _job("b", 0.9), replace=True) == ["piqa", "sciq"]
    assert list(_local(db).value) == [0.9, 0.9] and set(_local(db).run_id) == {"b"}


def test_a_failed_job_leaves_nothing(tmp_path):
    """The run and its scores are inserted, then a sample breaks NOT NULL: the transaction rolls
    back and nothing of the job is left."""
    import duckdb

    db = store.init(tmp_path / "s.duckdb", seed=False)
    record = factory.job(rows=factory.tasks("piqa", "sciq"), samples=3)
    record.samples[-1].doc_id = None  # the last row of the last insert
    with pytest.raises(duckdb.ConstraintException, match="doc_id"):
        store.write_job(db, record)
    counts = store.read_df(db, "SELECT (SELECT count(*) FROM runs) AS runs, (SELECT count(*) FROM scores) "
                               "AS scores, (SELECT count(*) FROM samples) AS samples")
    assert counts.values.tolist() == [[0, 0, 0]]
    store.write_job(db, factory.job(rows=factory.tasks("piqa", "sciq"), samples=3))  # and it is not stuck
    assert len(_local(db)) == 2


WRITER = textwrap.dedent("""
    import sys
    from evalsuite import store
    from evalsuite.records import JobRecord, Run, Score
    db = store.init(__import__("pathlib").Path(sys.argv[1]), seed=False)
    for step in range(1, 41):
        run = Run(run_id=f"r{step}", source="local", model="pythia-70m", step=step, dtype="float32")
        scores = [Score("pythia-70m", step, None, "piqa", "acc", 0, 0.5, 0.01, 10, None,
                        "float32", f"r{step}", "local")]
        store.write_job(db, JobRecord(run, 0, scores, []))
""")


def test_readers_read_while_a_sweep_writes(tmp_path):
    """Two processes: one writes 40 jobs, this one reads all the while; neither fails."""
    db = tmp_path / "s.duckdb"
    store.init(db, seed=False)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stderr=subprocess.PIPE, text=True)
    seen = []
    while writer.poll() is None:
        seen.append(len(_local(db)))
        time.sleep(0.01)
    assert writer.returncode == 0, writer.stderr.read()
    assert len(_local(db)) == 40
    assert len(seen) > 3 and seen == sorted(seen)  # it read many times, never a partial state


def test_unwritable_store_path(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(store.EvalsuiteError, match=f"cannot create store folder {blocker}"):
        store.init(blocker / "s.duckdb")
    assert main(["run", "--db", str(blocker / "s.duckdb"), "--tasks", "piqa", "--limit", "1"]) == 2
    assert capsys.readouterr().err.startswith(f"evalsuite: error: cannot create store folder {blocker}")


def test_not_a_database(tmp_path, capsys):
    bogus = tmp_path / "s.duckdb"
    bogus.write_text("hello")
    assert main(["ls", "--db", str(bogus)]) == 2
    assert capsys.readouterr().err.startswith(f"evalsuite: error: cannot open store {bogus}:")
    assert bogus.read_text() == "hello"  # untouched


def test_force_replaces_runs_as_well_as_scores(tmp_path):
    """Issue 11, item 10: --force left the replaced run's row behind (counted in the Runs view)."""
    db = store.init(tmp_path / "s.duckdb", seed=False)
    store.write_job(db, _job("a"))
    store.write_job(db, _job("b", 0.9), replace=True)
    assert list(store.read_df(db, "SELECT run_id FROM runs")["run_id"]) == ["b"]
    store.write_job(db, _job("c", 0.7, tasks=("piqa",)), replace=True)
    runs = store.read_df(db, "SELECT run_id FROM runs ORDER BY run_id")["run_id"]
    assert list(runs) == ["b", "c"]  # b still holds sciq


# --- Store files that cannot be used: each a named one-line error within seconds (items 6-8) ---

@pytest.fixture(scope="module")
def good_store(tmp_path_factory):
    return store.init(tmp_path_factory.mktemp("good") / "s.duckdb")  # seeded: about 1 MB


def _broken(kind: str, good, path):
    """A store file broken the way real ones break, made from a real store where it can be."""
    import random

    import duckdb

    data = good.read_bytes()
    if kind == "corrupt":  # bit rot: a few bytes flipped in every 256 KiB block after the headers
        data = bytearray(data)
        for offset in range(12_288 + 4096, len(data), 262_144):
            data[offset:offset + 64] = bytes(b ^ 0xFF for b in data[offset:offset + 64])
        path.write_bytes(bytes(data))
    elif kind == "truncated":  # a copy cut short (disk full, interrupted transfer)
        path.write_bytes(data[: len(data) * 3 // 10])
    elif kind == "random":
        path.write_bytes(random.Random(0).randbytes(len(data)))
    elif kind == "text":
        path.write_text("model,step\npythia-70m,1000\n")
    elif kind == "foreign":  # a DuckDB database, but not an evalsuite store
        with duckdb.connect(str(path)) as con:
            con.execute("CREATE TABLE notes (x INTEGER)")
    return path


BROKEN = {"corrupt": "the file is corrupt", "truncated": "the file is truncated or corrupt",
          "random": "not a DuckDB database", "text": "not a DuckDB database",
          "foreign": "not an evalsuite store"}


@pytest.mark.parametrize("kind", list(BROKEN))
@pytest.mark.parametrize("command", ["ls", "export", "import"])
def test_a_broken_store_is_a_named_one_line_error_within_seconds(good_store, tmp_path, capsys, kind, command):
    """Item 6: a corrupt store waited 60 s ('block' in DuckDB's checksum message matched 'lock');
    item 8: a truncated one was an IOException traceback."""
    db = _broken(kind, good_store, tmp_path / "s.duckdb")
    before = db.read_bytes()
    argv = {"ls": ["ls"], "export": ["export", "--model", "pythia-70m"],
            "import": ["import", str(PUBLISHED_ONE)]}[command]
    started = time.monotonic()
    assert main(argv + ["--db", str(db)]) == 2
    assert time.monotonic() - started < 15
    err = capsys.readouterr().err
    assert err.startswith("evalsuite: error: cannot ") and f"store {db}: {BROKEN[kind]} (" in err, err
    assert err.count("\n") == 1
    assert db.read_bytes() == before  # nothing "repaired" or overwritten


def test_the_dashboard_names_a_corrupt_store_within_seconds(good_store, tmp_path):
    from dashboard.data import load

    db = _broken("corrupt", good_store, tmp_path / "s.duckdb")
    started = time.monotonic()
    scores, runs, problem = load(db)
    assert time.monotonic() - started < 15
    assert scores is None and "the file is corrupt" in problem


@contextmanager
def _written_by_another_process(db):
    """Another process holds `db` open for writing until the block ends."""
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('held', flush=True); time.sleep(60)", str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        yield
    finally:
        holder.kill()
        holder.wait()


def test_a_store_locked_by_another_process_is_named_after_the_wait(tmp_path):
    db = store.init(tmp_path / "s.duckdb", seed=False)
    with _written_by_another_process(db):
        started = time.monotonic()
        with pytest.raises(store.EvalsuiteError, match=f"cannot open store {db}: another process holds its lock"):
            with store.connect(db, read_only=True, wait_s=1):
                pass
        assert 1 <= time.monotonic() - started < 15


TRY_WRITE = "import duckdb, sys\ntry:\n    duckdb.connect(sys.argv[1]).close()\nexcept duckdb.Error:\n    sys.exit(3)"


def test_a_held_store_keeps_writers_out_for_the_block_only(tmp_path):
    db = store.init(tmp_path / "s.duckdb", seed=False)
    with store.held(db):
        assert subprocess.run([sys.executable, "-c", TRY_WRITE, str(db)]).returncode == 0  # nothing read yet
        assert len(store.read_df(db, "SELECT * FROM runs")) == 0
        assert subprocess.run([sys.executable, "-c", TRY_WRITE, str(db)]).returncode == 3  # held since that read
        assert len(store.read_df(db, "SELECT * FROM scores")) == 0
    # let go: another process writes, and so does this one (a read-only database DuckDB still kept
    # open in this process would refuse this process a writing connection)
    assert subprocess.run([sys.executable, "-c", TRY_WRITE, str(db)]).returncode == 0
    with store.transaction(db) as con:
        con.execute("CREATE TABLE scratch (x INTEGER)")


def test_holding_a_store_that_cannot_be_opened_adds_no_error_and_no_wait(tmp_path):
    missing, bogus = tmp_path / "none.duckdb", tmp_path / "bogus.duckdb"
    bogus.write_text("hello")
    for path, error in ((missing, "no store at"), (bogus, "cannot open store")):
        with store.held(path), pytest.raises(store.EvalsuiteError, match=error):  # the read's own error
            store.read_df(path, "SELECT 1")
    assert not missing.exists() and bogus.read_text() == "hello"
    db = store.init(tmp_path / "s.duckdb", seed=False)
    with _written_by_another_process(db):
        started = time.monotonic()
        with store.held(db), pytest.raises(store.StoreLocked):  # a writer has it: the read's own wait, no more
            with store.connect(db, read_only=True, wait_s=1):
                pass
        assert time.monotonic() - started < 5


# --- Read-only and full disks, reproduced for real where this machine allows ---

@contextmanager
def _tmpfs(path, size: str):
    """A small tmpfs at `path` (needs root; skipped elsewhere)."""
    path.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True).returncode == 0
    if not mounted:
        pytest.skip("mounting a small tmpfs needs root (and a container that allows mount)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


@pytest.fixture
def read_only_store(good_store, tmp_path):
    """A real store on storage this process cannot write: a read-only mount as root, else modes."""
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir()
        shutil.copy(good_store, folder / "s.duckdb")
        (folder / "s.duckdb").chmod(0o444)
        folder.chmod(0o555)
        yield folder / "s.duckdb"
        folder.chmod(0o755)
        return
    with _tmpfs(tmp_path / "ro", "4m") as folder:
        shutil.copy(good_store, folder / "s.duckdb")
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        yield folder / "s.duckdb"


def test_a_read_only_store_reads_and_refuses_writes_in_one_line(read_only_store, capsys):
    db = read_only_store
    assert main(["ls", "--db", str(db), "--model", "pythia-70m"]) == 0
    assert capsys.readouterr().out.endswith(f"42 (model, step, shots) groups, 378 scores in {db}\n")
    assert main(["import", str(PUBLISHED_ONE), "--db", str(db)]) == 2
    assert capsys.readouterr().err == f"evalsuite: error: store {db} is not writable\n"
    with pytest.raises(store.EvalsuiteError) as caught:  # a sweep's writer: no pre-check, DuckDB's word
        store.write_job(db, _job("a"))
    assert str(caught.value).startswith(f"cannot open store {db}: ")
    assert ("read-only file system" in str(caught.value)) or ("permission denied" in str(caught.value))


def _fill(db) -> int:
    """Write jobs of 5,000 samples until the store refuses; the number of jobs stored."""
    from evalsuite.records import Sample

    for i in range(1000):
        record = _job(f"r{i}")
        record.run.step = i
        for s in record.scores:
            s.step = i
        record.samples = [Sample(record.run.run_id, "pythia-70m", i, "piqa", 0, d, 0, True, None,
                                 [-1.0 * d, -2.0], [True, False]) for d in range(5000)]
        try:
            store.write_job(db, record)
        except store.EvalsuiteError as exc:
            assert "the disk is full" in str(exc) and "cannot rollback" not in str(exc), exc
            assert str(exc).startswith(f"cannot write store {db}: the disk is full (")
            return i
    pytest.fail("the disk never filled up")


def test_a_full_disk_is_named_not_hidden_behind_rollback(tmp_path):
    """Item 7, on a real full file system: a 2 MB tmpfs."""
    with _tmpfs(tmp_path / "small", "2m") as folder:
        db = store.init(folder / "s.duckdb", seed=False)
        stored = _fill(db)
        assert stored >= 1
        runs = store.read_df(db, "SELECT count(*) AS n FROM runs").n[0]
        samples = store.read_df(db, "SELECT count(*) AS n FROM samples").n[0]
        assert (runs, samples) == (stored, stored * 5000)  # the failed job left nothing behind


def test_a_full_disk_stops_an_import_in_one_line(tmp_path, capsys):
    """Item 7 without root: the store's write-ahead log is /dev/full, whose every write fails
    with ENOSPC (No space left on device) from the kernel, as on a full disk."""
    db = store.init(tmp_path / "s.duckdb", seed=False)
    (tmp_path / "s.duckdb.wal").symlink_to("/dev/full")
    assert main(["import", str(PUBLISHED_ONE), "--db", str(db), "--source", "mine"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"evalsuite: error: cannot write store {db}: the disk is full (") and err.count("\n") == 1
    assert err.endswith("; import stopped after storing 0 complete files (importing again adds the rest)\n")
    (tmp_path / "s.duckdb.wal").unlink(missing_ok=True)
    assert main(["ls", "--db", str(db)]) == 0
    assert capsys.readouterr().out == f"no scores stored in {db}\n"


def test_a_table_an_older_store_lacks_reads_as_empty_and_other_problems_are_raised(tmp_path):
    """The dashboard's sweeps and workers, the Items view's documents: an older store without the
    table shows nothing; a query that fails for any other reason is an error, not "nothing"."""
    from dashboard import data

    path = store.init(tmp_path / "s.duckdb", seed=False)
    with store.connect(path) as con:
        for table in ("sweeps", "workers", "documents"):
            con.execute(f"DROP TABLE {table}")
    sweeps = data.load_sweeps(path)
    assert sweeps.empty and list(sweeps.columns)[:3] == ["sweep_id", "models", "planned"]
    assert data.load_workers(path, "any").empty
    assert store.items.documents(path, "piqa", 0, [0, 1]).empty
    with pytest.raises(Exception, match="nope"):
        store.read_df(path, "SELECT nope FROM runs", needs="runs")


def test_the_readme_lists_every_table_and_column():
    """The README's table of tables names each table a store has, and each of its columns."""
    import re
    from pathlib import Path

    from evalsuite.store.schema import TABLES, column_types

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)` \| [^|]+ \| (.+) \|$", readme, re.M)}
    for table, record_type in TABLES.items():
        assert table in rows, table
        listed = set(re.findall(r"`(\w+)`", rows[table]))
        assert set(column_types(record_type)) <= listed, (table, set(column_types(record_type)) - listed)
