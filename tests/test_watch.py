"""`evalsuite watch`: which checkpoint folders are complete (real safetensors files cut short,
sharded, with a saver's temp file), a pass over a folder with a half-written checkpoint, and,
end to end, a real training process writing four checkpoints while watch runs, a watch killed
with SIGKILL mid-sweep and restarted, each compared with `run` over the same folders."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from evalsuite import store
from evalsuite.catalog.complete import COMPLETE, INCOMPLETE, UNREADABLE, inspect
from evalsuite.cli import main
from evalsuite.lmeval.demo import tokenizer

import training
from conftest import assert_clean, evalsuite_cmd, open_app

TRAINING = str(Path(__file__).resolve().parent / "training.py")
ARGS = ["--tasks", "lambada_openai", "--limit", "3", "--device", "cpu"]
STEPS = [0, 2, 4, 6]


def _weights(path: Path, n: int = 4096) -> None:
    from safetensors.numpy import save_file

    save_file({"w": np.arange(n, dtype=np.float32), "b": np.ones(7, dtype=np.float32)}, str(path))


def _folder(root: Path, name: str = "step1") -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt_neox"}))
    _weights(folder / "model.safetensors")
    return folder


def test_a_saved_folder_is_complete_and_its_signature_follows_its_files(tmp_path):
    folder = _folder(tmp_path)
    first = inspect(folder)
    assert (first.state, first.reason) == (COMPLETE, None)
    assert inspect(folder).signature == first.signature
    assert inspect(folder, tokenizer=True).reason == "no tokenizer yet"  # savers write it after the weights
    (folder / "tokenizer.json").write_text("{}")
    assert inspect(folder).signature != first.signature
    assert inspect(folder, tokenizer=True).complete


def test_weights_cut_short_are_incomplete_until_their_last_byte(tmp_path):
    folder = _folder(tmp_path)
    weights = folder / "model.safetensors"
    whole = weights.read_bytes()
    for cut in (0, 5, 40, len(whole) // 2, len(whole) - 1):
        weights.write_bytes(whole[:cut])
        verdict = inspect(folder)
        assert verdict.state == INCOMPLETE, cut
        assert "model.safetensors" in verdict.reason
    weights.write_bytes(whole)
    assert inspect(folder).complete
    weights.write_bytes(whole + b"junk")
    assert inspect(folder).state == UNREADABLE
    weights.write_bytes(b"\xff" * 64)
    assert inspect(folder).state == UNREADABLE


def test_no_config_no_weights_or_a_temp_file_mean_incomplete(tmp_path):
    folder = _folder(tmp_path)
    (folder / "model.safetensors.tmp").write_bytes(b"")
    assert "temporary" in inspect(folder).reason
    (folder / "model.safetensors.tmp").unlink()
    (folder / "config.json").write_text('{"model_type": ')
    assert inspect(folder).state == INCOMPLETE
    (folder / "config.json").unlink()
    assert "config.json" in inspect(folder).reason
    empty = tmp_path / "step2"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    assert "no weights" in inspect(empty).reason


def test_a_sharded_checkpoint_waits_for_every_shard_its_index_names(tmp_path):
    folder = tmp_path / "checkpoint-5"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    shards = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": {"a": shards[0], "b": shards[1]}}))
    _weights(folder / shards[0])
    verdict = inspect(folder)
    assert verdict.state == INCOMPLETE and shards[1] in verdict.reason
    _weights(folder / shards[1])
    assert inspect(folder).complete


def test_a_torch_bin_is_complete_only_with_its_end_record(tmp_path):
    import torch

    folder = tmp_path / "checkpoint-3"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    torch.save({"w": torch.arange(5000.0)}, folder / "pytorch_model.bin")
    assert inspect(folder).complete
    whole = (folder / "pytorch_model.bin").read_bytes()
    (folder / "pytorch_model.bin").write_bytes(whole[: len(whole) - 30])
    assert inspect(folder).state == INCOMPLETE


def _save(root: Path, step: int, seed: int) -> None:
    torch_model = training.model(seed=seed)
    torch_model.save_pretrained(root / f"step{step}")
    tokenizer().save_pretrained(root / f"step{step}")


def _runs_per_step(db: Path, model: str = "my-run") -> dict[int, int]:
    rows = store.read_df(db, "SELECT step, count(*) AS n FROM runs WHERE model = ? GROUP BY step", [model])
    return {int(r.step): int(r.n) for r in rows.itertuples()}


def _scores(db: Path, model: str) -> dict:
    rows = store.read_df(db, "SELECT step, task, metric, value FROM scores WHERE model = ?", [model])
    return {(int(r.step), r.task, r.metric): r.value for r in rows.itertuples()}


def test_a_pass_leaves_a_half_written_checkpoint_until_it_is_complete(tmp_path, capsys):
    run_dir, db = tmp_path / "run", tmp_path / "s.duckdb"
    _save(run_dir, 0, seed=0)
    _save(run_dir, 2, seed=2)
    weights = run_dir / "step2" / "model.safetensors"
    whole = weights.read_bytes()
    weights.write_bytes(whole[: len(whole) // 3])  # the saver is a third of the way through
    watch = ["watch", str(run_dir), "--model", "my-run", "--once", "--db", str(db), *ARGS]
    assert main(watch) == 0
    out = capsys.readouterr().out
    assert _runs_per_step(db) == {0: 1}  # step 2 was not read: loading it would have failed
    assert "stored 1 checkpoint(s) (steps 0)" in out and "0 not loadable" in out
    assert "waiting for step 2 to be complete (model.safetensors is" in out
    note = store.read_df(db, "SELECT note FROM sweeps")["note"].iloc[0]
    assert note.startswith("waiting for step 2 to be complete")
    weights.write_bytes(whole)  # the saver finished
    assert main(watch) == 0
    out = capsys.readouterr().out
    assert _runs_per_step(db) == {0: 1, 2: 1}
    assert "stored 1 checkpoint(s) (steps 2), 1 already stored" in out
    assert sorted(p.name for p in run_dir.iterdir()) == ["step0", "step2"]  # nothing deleted


def _wait_for(lines: list[str], text: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not any(text in line for line in lines):
        assert time.monotonic() < deadline, lines
        time.sleep(0.1)


def test_an_unloadable_checkpoint_is_said_once_and_retried_when_its_files_change(tmp_path):
    import threading

    from safetensors.numpy import load_file, save_file

    from evalsuite.cli import build_parser
    from evalsuite.sweep.watch import options_from_args, watch

    run_dir, db = tmp_path / "run", tmp_path / "s.duckdb"
    _save(run_dir, 0, seed=0)
    _save(run_dir, 2, seed=2)
    weights = run_dir / "step0" / "model.safetensors"
    good = weights.read_bytes()
    tensors = load_file(str(weights))
    tensors["gpt_neox.embed_in.weight"] = tensors["gpt_neox.embed_in.weight"][:100]  # complete, but not this model
    save_file(tensors, str(weights), metadata={"format": "pt"})
    assert inspect(weights.parent).complete
    args = build_parser().parse_args(["watch", str(run_dir), "--model", "my-run", "--until", "4", "--interval", "0.2",
                                      "--db", str(db), *ARGS])
    lines: list[str] = []
    reports = []
    thread = threading.Thread(target=lambda: reports.append(watch(args, options_from_args(args), lines.append)))
    thread.start()
    _wait_for(lines, "evaluated my-run step 2")
    _wait_for(lines, "not evaluated: my-run step 0")
    time.sleep(1.5)  # several looks at the same files
    assert sum("not evaluated" in line for line in lines) == 1, lines
    weights.write_bytes(good)  # the files change: it is tried again
    _wait_for(lines, "evaluated my-run step 0")
    _save(run_dir, 4, seed=4)
    thread.join(timeout=300)
    report, = reports
    assert _runs_per_step(db) == {0: 1, 2: 1, 4: 1}
    assert report.stored == [2, 0, 4] and report.failed == [] and report.ended == "until"


def test_a_sharded_checkpoint_is_evaluated_once_every_shard_is_there(tmp_path, capsys):
    folder, db = tmp_path / "run" / "checkpoint-8", tmp_path / "s.duckdb"
    training.model(seed=8).save_pretrained(folder, max_shard_size="5MB")
    tokenizer().save_pretrained(folder)
    shards = sorted(folder.glob("model-*.safetensors"))
    assert len(shards) > 1
    last = shards[-1].read_bytes()
    shards[-1].unlink()  # the saver has not written the last shard yet
    watch = ["watch", str(tmp_path / "run"), "--model", "my-run", "--once", "--db", str(db), *ARGS]
    assert main(watch) == 0
    assert f"waiting for step 8 to be complete ({shards[-1].name} (named by model.safetensors.index.json) is not " \
           "there yet)" in capsys.readouterr().out
    shards[-1].write_bytes(last)
    assert main(watch) == 0
    assert _runs_per_step(db) == {8: 1}


def test_watch_refuses_a_missing_folder_in_one_line(tmp_path, capsys):
    assert main(["watch", str(tmp_path / "nope"), "--model", "my-run", "--db", str(tmp_path / "s.duckdb")]) == 2
    assert capsys.readouterr().err.strip().startswith("evalsuite: error: watch:")


def test_the_runs_view_says_what_a_watch_waits_for_and_old_stores_gain_the_note(tmp_path, monkeypatch):
    from evalsuite.records import Sweep

    db = store.init(tmp_path / "s.duckdb")  # with the published scores: the views have something to show
    with store.transaction(db) as con:  # a store made before watch: its sweeps table has no note
        con.execute("ALTER TABLE sweeps DROP COLUMN note")
    store.init(db)
    now = store.utcnow()
    store.start_sweep(db, Sweep("w1", "my-run", planned=0, started_at=now, updated_at=now, hostname="lab"))
    store.note_sweep(db, "w1", 3, "waiting for step 4 to be complete (model.safetensors is 10 of 20 bytes)")
    at = open_app(db, monkeypatch, view="runs")
    assert_clean(at)
    assert any(c.value == "` my-run `: ` waiting for step 4 to be complete (model.safetensors is 10 of 20 bytes) `"
               for c in at.caption), [c.value for c in at.caption]


def _watch(run_dir: Path, db: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    return subprocess.Popen(evalsuite_cmd("watch", str(run_dir), "--model", "my-run", "--db", str(db),
                                          "--interval", "0.3", *ARGS, *extra),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def followed(tmp_path_factory) -> tuple[Path, Path, str]:
    """Watch started first, then a training process that saves step0, 2, 4, 6, each one's weights
    arriving in two halves 1.5 s apart; watch exits once step 6 is stored."""
    root = tmp_path_factory.mktemp("followed")
    run_dir, db = root / "run", root / "watch.duckdb"
    run_dir.mkdir()
    watcher = _watch(run_dir, db, "--until", "6")
    trainer = subprocess.run([sys.executable, TRAINING, str(run_dir), "--save", ",".join(map(str, STEPS)),
                              "--pause", "0.5", "--slow-write", "1.5"], capture_output=True, text=True, timeout=600)
    assert trainer.returncode == 0, trainer.stderr[-2000:]
    out, _ = watcher.communicate(timeout=600)
    assert watcher.returncode == 0, out[-3000:]
    return run_dir, db, out


@pytest.mark.slow
def test_watch_follows_a_training_run_each_checkpoint_once_with_runs_scores(followed, tmp_path):
    run_dir, db, out = followed
    assert _runs_per_step(db) == {step: 1 for step in STEPS}
    assert "stored 4 checkpoint(s) (steps 0, 2, 4, 6)" in out and "0 not loadable" in out, out[-2000:]
    assert "not evaluated" not in out  # no half-written file was ever loaded
    sweep = store.read_df(db, "SELECT status, done FROM sweeps").iloc[0]
    assert (sweep["status"], int(sweep["done"])) == ("done", 4)
    by_run = tmp_path / "run.duckdb"
    assert main(["run", "--model", "my-run", "--model-path", str(run_dir), "--db", str(by_run), *ARGS]) == 0
    watched, ran = _scores(db, "my-run"), _scores(by_run, "my-run")
    assert watched and watched == ran


@pytest.mark.slow
def test_watch_killed_mid_sweep_and_restarted_stores_each_checkpoint_once(followed, tmp_path):
    run_dir, db = followed[0], tmp_path / "killed.duckdb"
    watcher = _watch(run_dir, db)
    # Killed on its own line for step 2, read from its output, never by polling the store: a
    # reader holding the store would send the records to the spool and let the sweep run on.
    # Step 2's record is queued only once step 0's commit has finished, and step 6 is not even
    # loaded yet, so the kill lands mid-sweep with step 0 stored.
    watchdog = threading.Timer(300, watcher.kill)
    watchdog.start()
    assert watcher.stdout is not None
    lines = []
    for line in watcher.stdout:
        lines.append(line)
        if line.startswith("evaluated my-run step 2 "):
            watcher.send_signal(signal.SIGKILL)
            break
    watchdog.cancel()
    watcher.wait(timeout=60)
    stored = _runs_per_step(db)
    assert 0 in stored and len(stored) < len(STEPS), "".join(lines)[-3000:]
    again = _watch(run_dir, db, "--once")
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out[-2000:]
    assert _runs_per_step(db) == {step: 1 for step in STEPS}
    assert _scores(db, "my-run") == _scores(followed[1], "my-run")


@pytest.mark.slow
def test_ctrl_c_ends_a_watch_with_one_truthful_line(tmp_path):
    db = tmp_path / "s.duckdb"
    watcher = _watch(tmp_path, db)
    assert watcher.stdout is not None
    first = watcher.stdout.readline()
    assert first.startswith("watching "), first
    time.sleep(1)
    watcher.send_signal(signal.SIGINT)
    out, _ = watcher.communicate(timeout=120)
    assert watcher.returncode == 0, out
    assert out.strip().splitlines()[-1] == ("watch my-run: stored 0 checkpoint(s) (steps none), 0 already stored, "
                                            f"0 not loadable; stopped by Ctrl-C; was waiting for the next "
                                            f"checkpoint in {tmp_path}")
    sweep = store.read_df(db, "SELECT status, note FROM sweeps").iloc[0]
    assert sweep["status"] == "stopped" and sweep["note"] == f"waiting for the next checkpoint in {tmp_path}"
