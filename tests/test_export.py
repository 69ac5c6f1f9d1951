"""`evalsuite export` (JSON and lm-eval files) and `evalsuite ls`, on the shipped published data."""

from __future__ import annotations

import json

import pytest

from evalsuite import store
from evalsuite.cli import main
from evalsuite.importer import import_paths


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
    assert lines[1].split() == ["published", "pythia-12b-deduped", "0", "0", "arc_easy,lambada_openai,piqa,sciq,winogrande", "9"]
    assert lines[-1] == f"42 (model, step, shots) groups, 378 scores in {db}"
