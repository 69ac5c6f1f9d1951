"""`evalsuite import` on real lm-eval 0.3 and 0.4 result files (tests/data/lm-eval-files, copied
from lm-evaluation-harness's results/ and EleutherAI/pythia's evals/): every score stored under
the right model, step, tokens, shots and value, every task (not only the five), Pythia
checkpoints under their old `pythia-v1.1-` names, names from a local path said and renamable,
Hub ids in any case one model, a gpt-neox file's iteration its step, and `--step` only for files
that name none; real files that do not say which model was evaluated (tests/data/lm-eval-refused)
refused in one line each. (Issue 16, items 5 and 8.)"""

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

REFUSED = Path(__file__).parent / "data" / "lm-eval-refused"
NEOX = REFUSED / "gpt-neox" / "pretraining_baseline_eval_results_03-21-2025-23-20-47.json"
PEFT = REFUSED / "peft" / "results_2024-08-21T04-37-55.218014.json"

# file -> (model, step, dtype, documents, shots) as evalsuite stores them; step None: a released
# model's one checkpoint
EXPECTED = {
    LLAMA: ("7B", None, None, None, 0),  # a local folder's name, said in the report
    V03 / "bloom-560m_lambada_openai_0-shot.json": ("bloom-560m", None, None, None, 0),
    V03 / "xglm-564M_lambada_openai_0-shot.json": ("xglm-564m", None, None, None, 0),
    V03 / "xglm-1.7B_common_sense_reasoning_0-shot.json": ("xglm-1.7b", None, None, None, 0),
    V03 / "mpt-7b_lambada_0-shot.json": ("mpt-7b", None, None, None, 0),
    V03 / "opt-125m.json": ("opt-125m", None, None, None, 0),  # config.model says "gpt2"
    # EleutherAI/pythia-v1.1-160m-deduped at revision step3000, and 70m-deduped's step83000 5-shot
    V03 / "160m-deduped_step3000.json": ("pythia-160m-deduped", 3000, None, None, 0),
    V03 / "70m-deduped-5shot_step83000.json": ("pythia-70m-deduped", 83000, None, None, 5),
    GOOSE: ("rwkv7-goose-0.1b-pile-hf", None, "bfloat16", 5153, 0),
    G1: ("rwkv7-0.1b-g1", None, "float32", 5153, 0),
    # model_args starting with trust_remote_code=True, dtype=float16; 9 documents
    V04 / "TinyLlama__TinyLlama-1.1B-Chat-v1.0" / "results_2024-08-14T04-26-36.420014.json":
        ("tinyllama-1.1b-chat-v1.0", None, "float16", 9, 0),
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
    for path, (model, step, dtype, n, shots) in EXPECTED.items():
        (run,) = runs[runs.model == model].itertuples()
        assert (pd.isna(run.step) and step is None) or run.step == step, path.name
        rows = store.read_df(imported, "SELECT * FROM scores WHERE run_id = ?", [run.run_id])
        stored = {(r.task, r.metric): (r.value, None if r.stderr != r.stderr else r.stderr) for r in rows.itertuples()}
        assert stored == file_scores(path), path.name  # every task, not only the five
        # Pythia's checkpoints: 2,097,152 tokens a step; a released model's tokens are not known
        assert set(rows.tokens.fillna(-1)) == {step * 2_097_152 if step else -1}
        assert set(rows.shots) == {shots} and set(rows.dtype.fillna("-")) == {dtype or "-"}
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


def test_real_files_that_do_not_say_which_model_was_evaluated_are_refused_in_a_line(tmp_path, capsys):
    """A PEFT adapter applied to Llama 3 (its scores are not Llama 3's), an empty model_args, a
    custom model class with no pretrained=, a gpt-neox evaluation: nothing stored, one line each;
    --model imports them."""
    db = tmp_path / "store.duckdb"
    assert main(["import", str(REFUSED), "--db", str(db)]) == 2
    lines = capsys.readouterr().err.splitlines()
    unnamed = ("the file does not say which model it evaluated (no pretrained= in config.model_args); "
               "pass --model NAME (and --step N)")
    assert lines == [
        f"evalsuite: skipped {NEOX}: {unnamed}",
        f"evalsuite: skipped {REFUSED / 'no-model-args' / 'cb.json'}: {unnamed}",
        f"evalsuite: skipped {REFUSED / 'no-pretrained' / 'results_2025-01-21T00-40-03.356274.json'}: {unnamed}",
        f"evalsuite: skipped {PEFT}: the file evaluated 'meta-llama/Meta-Llama-3-8B-Instruct' with "
        "'peft=../prompt-pursuit/results/aug17/gsm8k_8shot_pursue_numq_1000_r16_lr1e-6/epoch_20' applied, "
        "not that model; pass --model NAME (and --step N)"]
    assert store.read_df(db, "SELECT count(*) AS n FROM runs WHERE source = 'local'").n[0] == 0
    assert main(["import", str(PEFT), "--model", "llama-3-8b-pursuit", "--step", "20", "--db", str(db)]) == 0
    runs = store.read_df(db, "SELECT model, step, model_source, dtype, doc_limit FROM runs WHERE source = 'local'")
    assert runs.to_dict("records") == [{
        "model": "llama-3-8b-pursuit", "step": 20, "dtype": "bfloat16", "doc_limit": 512,
        "model_source": "meta-llama/Meta-Llama-3-8B-Instruct + "
                        "peft=../prompt-pursuit/results/aug17/gsm8k_8shot_pursue_numq_1000_r16_lr1e-6/epoch_20"}]


def test_a_real_gpt_neox_evaluation_is_stored_at_its_iteration(tmp_path):
    """gpt-neox (2025) writes its NeoX arguments as config.model_args, a mapping: no pretrained=,
    so --model names the run (refused without it: above); its iteration among them is the step."""
    db = tmp_path / "store.duckdb"
    assert main(["import", str(NEOX), "--model", "neox-baseline", "--db", str(db)]) == 0
    rows = store.read_df(db, "SELECT model, step, task, metric, value FROM scores WHERE source = 'local' "
                             "ORDER BY metric")
    assert rows.to_dict("records") == [
        {"model": "neox-baseline", "step": 40528, "task": "piqa", "metric": "acc", "value": 0.7693144722524483},
        {"model": "neox-baseline", "step": 40528, "task": "piqa", "metric": "acc_norm", "value": 0.7780195865070729}]
