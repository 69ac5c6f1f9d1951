"""`evalsuite import` on real lm-eval 0.3 and 0.4 result files of models that are not Pythia
(tests/data/lm-eval-files, copied from lm-evaluation-harness's results/): every score stored under
the right model, step, tokens and value, every task (not only the five), names from a local path
said and renamable, Hub ids in any case one model, a gpt-neox file's iteration its step, and
`--step` only for files that name none. (Issue 16, items 5 and 8.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from evalsuite import store
from evalsuite.cli import main
from evalsuite.io.importer import import_paths

FILES = Path(__file__).parent / "data" / "lm-eval-files"
V03, V04 = FILES / "lm-eval-0.3", FILES / "lm-eval-0.4"
LLAMA = V03 / "llama-7B_common_sense_reasoning_0-shot.json"
GOOSE = V04 / "SmerkyG__RWKV7-Goose-0.1B-Pile-HF" / "results_2025-02-25T02-50-33.665339.json"
G1 = V04 / "fla-hub__rwkv7-0.1B-g1" / "results_2025-03-10T18-51-58.020979.json"

# file -> (model, step, dtype, documents) as evalsuite stores them: released models, no step
EXPECTED = {
    LLAMA: ("7B", None, None, None),  # a local folder's name, said in the report
    V03 / "bloom-560m_lambada_openai_0-shot.json": ("bloom-560m", None, None, None),
    V03 / "xglm-564M_lambada_openai_0-shot.json": ("xglm-564m", None, None, None),
    V03 / "xglm-1.7B_common_sense_reasoning_0-shot.json": ("xglm-1.7b", None, None, None),
    V03 / "mpt-7b_lambada_0-shot.json": ("mpt-7b", None, None, None),
    GOOSE: ("rwkv7-goose-0.1b-pile-hf", None, "bfloat16", 5153),
    G1: ("rwkv7-0.1b-g1", None, "float32", 5153),
}


def file_scores(path: Path) -> dict[tuple[str, str], tuple[float, float | None]]:
    """{(task, metric): (value, stderr)} read straight from the file, as lm-eval wrote it."""
    out = {}
    for task, values in json.loads(path.read_text())["results"].items():
        for key, value in values.items():
            name, _, filt = key.partition(",")
            if "_stderr" in name or not isinstance(value, (int, float)):
                continue
            stderr = values.get(f"{name}_stderr,{filt}" if filt else f"{name}_stderr")
            out[(task, {"ppl": "perplexity"}.get(name, name))] = (value, stderr)
    return out


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("real") / "store.duckdb"
    report = import_paths([FILES], db, seed=False)
    assert report.skipped == [] and sorted(report.imported) == sorted(EXPECTED)
    return db


def test_every_score_of_every_real_file_is_stored_under_its_model(imported):
    runs = store.read_df(imported, "SELECT * FROM runs")
    assert len(runs) == len(EXPECTED)
    for path, (model, step, dtype, n) in EXPECTED.items():
        (run,) = runs[runs.model == model].itertuples()
        assert step is None and pd.isna(run.step)
        rows = store.read_df(imported, "SELECT * FROM scores WHERE run_id = ?", [run.run_id])
        stored = {(r.task, r.metric): (r.value, None if r.stderr != r.stderr else r.stderr) for r in rows.itertuples()}
        assert stored == file_scores(path), path.name  # every task, not only the five
        assert rows.step.isna().all() and rows.tokens.isna().all()  # released: no step, tokens unknown
        assert set(rows.shots) == {0} and set(rows.dtype.fillna("-")) == {dtype or "-"}
        assert set(rows.n.fillna(-1)) == {n if n else -1}


def test_the_five_tasks_and_the_others_are_listed(imported):
    tasks = set(store.read_df(imported, "SELECT DISTINCT task FROM scores")["task"])
    assert {"piqa", "arc_easy", "winogrande", "lambada_openai"} < tasks
    assert {"hellaswag", "copa", "boolq", "mc_taco", "lambada_openai_mt_de", "arc_challenge"} < tasks


def test_a_name_from_a_local_path_is_said_and_renamed_with_model(tmp_path, capsys):
    db = tmp_path / "store.duckdb"
    assert main(["import", str(LLAMA), "--db", str(db)]) == 0
    err = capsys.readouterr().err
    assert err == (f"evalsuite: {LLAMA}: model name '7B' comes from the local path "
                   "'/gaueko1/hizkuntza-ereduak/LLaMA/lm/huggingface/7B'; import it again with --model NAME "
                   "to store it under another name\n")
    renamed = tmp_path / "renamed.duckdb"
    assert main(["import", str(LLAMA), "--model", "llama-7b", "--db", str(renamed)]) == 0
    assert capsys.readouterr().err == ""
    runs = store.read_df(renamed, "SELECT model, step, model_source FROM runs WHERE source = 'local'")
    assert runs.to_dict("records") == [{"model": "llama-7b", "step": None,
                                        "model_source": "/gaueko1/hizkuntza-ereduak/LLaMA/lm/huggingface/7B"}]


def test_a_hub_id_in_any_case_is_one_model(tmp_path):
    raw = json.loads(GOOSE.read_text())
    raw["config"]["model_args"] = raw["config"]["model_args"].replace("SmerkyG/RWKV7-Goose", "smerkyg/rwkv7-goose")
    lower = tmp_path / "lower" / "results_2025-01-01T00-00-00.json"
    lower.parent.mkdir()
    lower.write_text(json.dumps(raw))
    db = tmp_path / "store.duckdb"
    report = import_paths([GOOSE, lower], db, seed=False, source="a")
    assert len(report.imported) == 1 and len(report.unchanged) == 1  # the same scores of one model
    assert set(store.read_df(db, "SELECT model FROM runs")["model"]) == {"rwkv7-goose-0.1b-pile-hf"}


def test_step_is_for_files_that_name_none_and_never_fails_one_that_does(tmp_path, capsys):
    """A released model's file takes --step; a file naming its own keeps it, with a line."""
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(GOOSE, folder / "results_2025-02-25T02-50-33.665339.json")
    pythia = json.loads(GOOSE.read_text())
    pythia["config"]["model_args"] = "pretrained=EleutherAI/pythia-70m,revision=step2000"
    (folder / "results_2025-01-01T00-00-00.json").write_text(json.dumps(pythia))
    db = tmp_path / "store.duckdb"
    assert main(["import", str(folder), "--step", "1000", "--db", str(db)]) == 0
    assert capsys.readouterr().err.endswith(
        "the file names step 2000, kept (--step 1000 is for files that name no step)\n")
    runs = store.read_df(db, "SELECT model, step FROM runs WHERE source = 'local' ORDER BY model")
    assert runs.to_dict("records") == [{"model": "pythia-70m", "step": 2000},
                                       {"model": "rwkv7-goose-0.1b-pile-hf", "step": 1000}]
    tokens = store.read_df(db, "SELECT DISTINCT model, tokens FROM scores WHERE source = 'local' ORDER BY model")
    assert list(tokens.tokens.fillna(-1)) == [2000 * 2_097_152, -1]  # Pythia's batch; the other's unknown


def test_a_gpt_neox_file_s_iteration_is_its_step(tmp_path):
    raw = json.loads(GOOSE.read_text())
    del raw["config"]["model_args"]
    raw["iteration"] = 143000  # gpt-neox's evaluate.py writes the checkpoint's iteration
    path = tmp_path / "neox.json"
    path.write_text(json.dumps(raw))
    db = tmp_path / "store.duckdb"
    report = import_paths([path], db, seed=False, model="pythia-160m", step=5)
    assert report.skipped == [] and [line for _, line in report.left_out] == [
        "the file names step 143000, kept (--step 5 is for files that name no step)"]
    scores = store.read_df(db, "SELECT DISTINCT model, step, tokens FROM scores")
    assert scores.to_dict("records") == [{"model": "pythia-160m", "step": 143000, "tokens": 143000 * 2_097_152}]


def test_a_jsonl_that_no_results_file_reads_is_named(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(GOOSE, folder / GOOSE.name)
    (folder / "notes.jsonl").write_text('{"a": 1}\n')
    (folder / "samples_piqa_2025-02-25T02-50-33.665339.jsonl").write_text('{"doc_id": 0}\n')  # no piqa in it
    db = tmp_path / "store.duckdb"
    assert main(["import", str(folder), "--db", str(db)]) == 0
    lines = capsys.readouterr().err.splitlines()
    reason = ("left out: no results_<date>.json beside it names it as its samples file "
              "(samples_<task>_<date>.jsonl of a task it holds)")
    assert lines == [f"evalsuite: {folder / 'notes.jsonl'}: {reason}",
                     f"evalsuite: {folder / 'samples_piqa_2025-02-25T02-50-33.665339.jsonl'}: {reason}"]


def test_a_file_with_several_shot_counts_is_one_run_each(tmp_path):
    """lm-eval 0.4 writes each task's own n-shot; such a file was refused whole."""
    raw = json.loads(GOOSE.read_text())
    raw["results"]["piqa"] = {"alias": "piqa", "acc,none": 0.6, "acc_stderr,none": 0.01}
    raw["n-shot"]["piqa"] = 5
    path = tmp_path / "results_2025-01-01T00-00-00.json"
    path.write_text(json.dumps(raw))
    db = tmp_path / "store.duckdb"
    report = import_paths([path], db, seed=False)
    assert report.imported == [path] and report.scores == 3
    runs = store.read_df(db, "SELECT r.run_id, s.task, s.shots FROM runs r JOIN scores s USING (run_id) "
                             "ORDER BY shots, task")
    assert list(zip(runs.task, runs.shots)) == [("lambada_openai", 0), ("lambada_openai", 0), ("piqa", 5)]
    assert runs.run_id.nunique() == 2
    assert import_paths([path], db, seed=False).unchanged == [path]
