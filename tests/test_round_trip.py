"""`evalsuite export --format lm-eval`, then `evalsuite import` into a new store, gives back every
row: (source, model, step, shots, task, metric, value, stderr, tokens) and the run setting (n,
limit, dtype), Pythia or not, released or mid-training. (Issue 16, item 6.)"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from evalsuite import store
from evalsuite.cli import main
from evalsuite.io.importer import import_paths

from factory import job

REAL = Path(__file__).parent / "data" / "lm-eval-files"
ROW = ["source", "model", "step", "shots", "task", "metric", "value", "stderr", "tokens", "n", "doc_limit", "dtype"]


def _rows(db: Path) -> list[tuple]:
    frame = store.read_df(db, f"SELECT {', '.join(ROW)} FROM scores WHERE source <> 'published'")
    frame = frame.astype(object).where(pd.notna(frame), None)
    return sorted(map(tuple, frame.itertuples(index=False)), key=repr)


def _with_tokens(record, tokens: int | None):
    for score in record.scores:
        score.tokens = tokens
    return record


def _original(db: Path) -> None:
    """Other labs' real files, and runs made here: a Pythia variant no entry describes (with the
    tokens its run was told), a --limit trial beside the full set at one step, a float16 rerun, a
    mid-training checkpoint of a model of one's own, several shot counts."""
    assert import_paths([REAL], db, seed=False, source="other-lab").skipped == []
    five = [("piqa", "acc", 0.61, 0.011), ("piqa", "acc_norm", 0.62, None), ("lambada_openai", "perplexity", 41.5, 2.5),
            ("hellaswag", "acc", 0.3, 0.004)]
    records = [
        _with_tokens(job("pythia-v0-70m", 1000, five, run_id="v0"), 1000 * 2_097_152),
        job("pythia-70m", 1000, five, run_id="full"),
        job("pythia-70m", 1000, five, run_id="trial", doc_limit=5, n=5),
        job("pythia-70m", 1000, five, run_id="half", dtype="float16"),
        job("pythia-70m", 143000, five, run_id="fewshot", shots=5),
        _with_tokens(job("my-run", 300, five, run_id="mine", dtype="bfloat16"), 300 * 524_288),
        job("my-run", None, five[:1], run_id="mine-final", source="lab-b"),
    ]
    for record in records:
        store.write_job(db, record)


def test_export_then_import_gives_back_every_row(tmp_path, capsys):
    original, copy, out = tmp_path / "a.duckdb", tmp_path / "b.duckdb", tmp_path / "lm-eval"
    store.init(original, seed=False)
    _original(original)
    assert main(["export", "--format", "lm-eval", "--out", str(out), "--db", str(original)]) == 0
    assert main(["import", str(out), "--db", str(copy)]) == 0
    capsys.readouterr()
    assert _rows(copy) == _rows(original)
    assert len(_rows(original)) > 80


def test_an_exported_file_names_its_model_and_import_keeps_it(tmp_path, capsys):
    """pythia-v0-70m came back as pythia-70m, beside the published numbers: the file's pretrained=
    is read as Pythia's, but its evalsuite block names the model it was stored as."""
    original, copy, out = tmp_path / "a.duckdb", tmp_path / "b.duckdb", tmp_path / "lm-eval"
    store.init(original, seed=False)
    store.write_job(original, _with_tokens(job("pythia-v0-70m", 1000, run_id="v0"), 1000 * 2_097_152))
    assert main(["export", "--format", "lm-eval", "--out", str(out), "--db", str(original)]) == 0
    (path,) = out.rglob("*.json")
    assert json.loads(path.read_text())["evalsuite"] == {"source": "local", "model": "pythia-v0-70m", "step": 1000,
                                                        "tokens": 1000 * 2_097_152}
    assert main(["import", str(out), "--db", str(copy)]) == 0
    capsys.readouterr()
    runs = store.read_df(copy, "SELECT model, step FROM runs WHERE source = 'local'")
    assert runs.to_dict("records") == [{"model": "pythia-v0-70m", "step": 1000}]


def test_published_rows_come_back_published_only_when_asked(tmp_path, capsys):
    """'published' is EleutherAI's numbers: a file only says so with an explicit --source."""
    original, out = tmp_path / "a.duckdb", tmp_path / "lm-eval"
    store.init(original, seed=False)
    store.write_job(original, job("opt-125m", None, run_id="p", source="published"))
    assert main(["export", "--format", "lm-eval", "--out", str(out), "--db", str(original)]) == 0
    capsys.readouterr()
    plain = import_paths([out], tmp_path / "plain.duckdb", seed=False)
    assert [line for _, line in plain.left_out] == [
        "its evalsuite block says source published: stored as local (import it with --source published to keep that)"]
    named = tmp_path / "named.duckdb"
    assert import_paths([out], named, seed=False, source="published").imported
    every = "SELECT * EXCLUDE (run_id) FROM scores ORDER BY ALL"
    assert store.read_df(named, every).equals(store.read_df(original, every))
