"""`evalsuite export` (JSON and lm-eval files) and `evalsuite ls`, on the shipped published data, and
on names no export may turn into a path outside --out."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from evalsuite import store
from evalsuite.cli import main
from evalsuite.io.importer import import_paths
from evalsuite.paths import PUBLISHED_RAW_DIR

import factory


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return store.init(tmp_path_factory.mktemp("export") / "s.duckdb")  # seeded: published data


def test_json_export(db, tmp_path, capsys):
    out = tmp_path / "scores.json"
    assert main(["export", "--db", str(db), "--model", "pythia-160m", "--task", "piqa", "--out", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote 84 scores to {out}\n"  # (27 + 15 checkpoints) x 2 metrics
    rows = json.loads(out.read_text())
    first = rows[0]
    assert {k: first[k] for k in ("model", "step", "task", "metric", "shots", "n", "source")} == {
        "model": "pythia-160m", "step": 0, "task": "piqa", "metric": "acc", "shots": 0, "n": None,
        "source": "published"}
    stored = store.read_df(db, "SELECT value, stderr FROM scores WHERE model = 'pythia-160m' AND step = 0 "
                               "AND task = 'piqa' AND metric = 'acc' AND shots = 0")
    assert (first["value"], first["stderr"]) == (stored.value[0], stored.stderr[0])


def test_json_to_stdout_and_no_match(db, capsys):
    assert main(["export", "--db", str(db), "--model", "opt-1.3b", "--task", "sciq"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["metric"], r["step"]) for r in rows] == [("acc", None), ("acc_norm", None)]
    assert main(["export", "--db", str(db), "--model", "pythia-demo"]) == 2
    assert capsys.readouterr().err == "evalsuite: error: no stored scores match; see 'evalsuite ls'\n"


def test_lm_eval_export_reimports_to_the_same_scores(db, tmp_path, capsys):
    out = tmp_path / "lm-eval"
    assert main(["export", "--db", str(db), "--format", "lm-eval", "--out", str(out), "--model", "pythia-410m"]) == 0
    assert capsys.readouterr().out == f"wrote 42 lm-eval results files (378 scores) under {out}\n"
    doc = json.loads((out / "pythia-410m" / "results_step13000_5shot_published.json").read_text())
    assert doc["config"]["model_args"] == "pretrained=EleutherAI/pythia-410m,revision=step13000"
    assert doc["n-shot"]["sciq"] == 5 and set(doc["results"]["sciq"]) == {
        "alias", "acc,none", "acc_stderr,none", "acc_norm,none", "acc_norm_stderr,none"}
    fresh = tmp_path / "fresh.duckdb"
    report = import_paths([out], fresh, source="published", seed=False)
    assert len(report.imported) == 42 and not report.skipped
    cols = "model, step, task, metric, shots, value, stderr"
    again = store.read_df(fresh, f"SELECT {cols} FROM scores ORDER BY ALL")
    original = store.read_df(db, f"SELECT {cols} FROM scores WHERE model = 'pythia-410m' ORDER BY ALL")
    assert again.equals(original)


def test_ls(db, capsys):
    assert main(["ls", "--db", str(db), "--model", "pythia-12b-deduped"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["source", "model", "step", "shots", "tasks", "scores"]
    assert lines[1].split() == ["published", "pythia-12b-deduped", "0", "0",
                                "arc_easy,lambada_openai,piqa,sciq,winogrande", "9"]
    assert lines[-1] == f"42 (model, step, shots) groups, 378 scores in {db}"


def _local_job(db, model: str, value: float = 0.5, source: str = "local", step: int = 1000) -> None:
    """A row as a store written before names and values were checked could hold it."""
    store.write_job(db, factory.job(model, step, factory.tasks("piqa", value=value), source=source,
                                    run_id=f"old-{len(model)}-{step}", dtype=None))


def _files(root) -> set:
    return {p for p in root.rglob("*") if p.is_file()}


def test_export_never_writes_outside_out(tmp_path, capsys):
    """Issue 11, item 1: a stored model '..' (from `pretrained=foo/..`) wrote one level above --out."""
    db = store.init(tmp_path / "s.duckdb", seed=False)
    _local_job(db, "..")
    out = tmp_path / "a" / "out"
    before = _files(tmp_path)
    assert main(["export", "--db", str(db), "--format", "lm-eval", "--out", str(out)]) == 2
    assert capsys.readouterr().err == ("evalsuite: error: the store holds a bad model name '..' (use "
                                       "letters, digits, '.', '-' and '_', starting with a letter or digit, "
                                       "no '..', at most 100 characters); leave it out with --model/--task/--source\n")
    assert _files(tmp_path) == before


def test_a_name_import_refuses_cannot_reach_export(tmp_path, capsys):
    # Old: the file was stored as model '..' and the export wrote above --out.
    raw = json.loads((PUBLISHED_RAW_DIR / "pythia-v1/pythia-160m/zero-shot/160m_step1000.json").read_text())
    raw["config"]["model_args"] = "pretrained=foo/..,revision=step1000"
    (tmp_path / "in.json").write_text(json.dumps(raw))
    db = tmp_path / "s.duckdb"
    status = main(["import", str(tmp_path / "in.json"), "--db", str(db), "--source", "mine"])
    out = tmp_path / "a" / "out"
    main(["export", "--db", str(db), "--format", "lm-eval", "--out", str(out), "--source", "mine"])
    assert not (tmp_path / "a" / "results_step1000_0shot_mine.json").exists()
    assert all(p.is_relative_to(out) for p in _files(tmp_path / "a"))
    assert status == 2
    assert capsys.readouterr().err.startswith(f"evalsuite: skipped {tmp_path / 'in.json'}: the file names model '..'")


def test_export_refuses_a_symlink_out_of_out(tmp_path, capsys):
    db = store.init(tmp_path / "s.duckdb", seed=False)
    _local_job(db, "pythia-70m")
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "pythia-70m").symlink_to(elsewhere)
    assert main(["export", "--db", str(db), "--format", "lm-eval", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"evalsuite: error: refusing to write {out}/pythia-70m/results_step1000_0shot_local.json: "
                          f"it resolves to {elsewhere}/") and err.count("\n") == 1
    assert not any(elsewhere.iterdir())


@pytest.mark.parametrize("argv", [["ls", "--model", "a\x00b"], ["export", "--model", "a\x00b"],
                                  ["export", "--task", "../x"], ["ls", "--source", "a/b"]])
def test_names_in_flags_are_one_line_errors(db, capsys, argv):
    assert main(argv + ["--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("evalsuite: error: bad ") and err.count("\n") == 1


def test_nul_in_a_stored_model_name_is_a_one_line_error(tmp_path, capsys):
    """Issue 11, item 8: a NUL in a model name was a ValueError traceback (embedded null byte)."""
    db = store.init(tmp_path / "s.duckdb", seed=False)
    _local_job(db, "pythia\x00x")
    assert main(["export", "--db", str(db), "--format", "lm-eval", "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("evalsuite: error: the store holds a bad model name 'pythia\\x00x'")


def test_json_export_to_a_folder_is_a_one_line_error(db, tmp_path, capsys):
    """Issue 11, item 8: `export --out DIR --format json` was an IsADirectoryError traceback."""
    assert main(["export", "--db", str(db), "--model", "opt-1.3b", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (f"evalsuite: error: --out {tmp_path} is a folder; --format json "
                                       "writes one file (e.g. --out scores.json)\n")
    assert main(["export", "--db", str(db), "--model", "opt-1.3b", "--out", str(tmp_path / "no" / "x.json")]) == 2
    assert capsys.readouterr().err == (f"evalsuite: error: cannot write {tmp_path / 'no' / 'x.json'}: "
                                       "No such file or directory\n")


def test_json_export_is_strict_json(tmp_path, capsys):
    """Issue 11, item 4: a stored infinity was exported as `Infinity`, which strict parsers reject."""
    db = store.init(tmp_path / "s.duckdb", seed=False)
    _local_job(db, "pythia-70m", value=float("inf"))
    assert main(["export", "--db", str(db)]) == 0

    def strict(name):
        raise ValueError(f"{name} is not JSON")

    rows = json.loads(capsys.readouterr().out, parse_constant=strict)
    assert [row["value"] for row in rows] == [None]
    out = tmp_path / "lm"
    assert main(["export", "--db", str(db), "--format", "lm-eval", "--out", str(out)]) == 0
    (path,) = _files(out)
    assert json.loads(path.read_text(), parse_constant=strict)["results"]["piqa"]["acc,none"] is None


def test_ls_escapes_control_characters(tmp_path, capsys):
    """Issue 11, item 10: names went to the terminal raw (escape sequences, NUL)."""
    db = store.init(tmp_path / "s.duckdb", seed=False)
    _local_job(db, "evil\x1b[2J\x1b]0;owned\x07", source="src\x00x")
    assert main(["ls", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x00" not in out and "\x07" not in out
    assert out.splitlines()[1].split() == ["src\\x00x", "evil\\x1b[2J\\x1b]0;owned\\x07", "1000", "0", "piqa", "1"]


def test_a_reader_that_stops_early_gets_no_traceback(db):
    """`evalsuite export | head`: the export stops quietly when its reader has gone away."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # a reader that has already stopped: the first write fails (EPIPE)
    try:
        done = subprocess.run([sys.executable, "-m", "evalsuite.cli", "export", "--db", str(db)],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (141, "")
