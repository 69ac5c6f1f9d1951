"""`evalsuite import` and the built-in reference data: every published file, lm-eval 0.4 output
made here by a real run, malformed and foreign files, idempotency, sources, seeding."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalsuite import store
from evalsuite.catalog.entries import builtin_catalog
from evalsuite.catalog.pythia import FINAL_STEP, PUBLISHED_STEPS
from evalsuite.catalog.tasks import load_tasks
from evalsuite.cli import main
from evalsuite.io.identity import model_name
from evalsuite.io.importer import import_paths
from evalsuite.paths import PUBLISHED_RAW_DIR, TOKENIZER_DIR
from evalsuite.records import Document
from evalsuite.store.seed import RUNS_CSV, SCORES_CSV

# The README's coverage: zero-shot at every published step, five-shot at 3000, 13000 ... 143000.
FIVE_SHOT_STEPS = [3000] + list(range(13_000, FINAL_STEP + 1, 10_000))
TOKENS_PER_STEP = 2_097_152  # the Pythia card's batch: 1024 sequences of 2048 tokens
CATALOG = builtin_catalog()
SUITE = [m.name for m in CATALOG.family("pythia", "pythia-deduped")
         if not m.name.startswith(("pythia-14m", "pythia-31m"))]  # the 16 of the suite
OPT_PARAMS = {m.name: m.params for m in CATALOG.family("opt")}
BLOOM_PARAMS = {m.name: m.params for m in CATALOG.family("bloom")}
ONE_FILE = PUBLISHED_RAW_DIR / "pythia-v1/pythia-160m/zero-shot/160m_step1000.json"


def _numbers(raw: dict) -> int:
    """The scores a 0.3 file holds: every number of every task that is not a stderr."""
    return sum(isinstance(v, (int, float)) and "_stderr" not in k
               for t in raw["results"].values() for k, v in t.items())


ONE_FILE_SCORES = _numbers(json.loads(ONE_FILE.read_text()))  # 9 of the five tasks, 163 of the others


def _expected_metrics() -> set[tuple[str, str]]:
    return {(spec.name, metric) for spec in load_tasks().tasks.values() for metric in spec.metrics}


def _scores(db: Path, where: str = "TRUE"):
    return store.read_df(db, f"SELECT * FROM scores WHERE {where} ORDER BY ALL")


@pytest.fixture(scope="module")
def published_db(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("published") / "store.duckdb"
    report = import_paths([PUBLISHED_RAW_DIR], db, source="published", seed=False, tasks=list(load_tasks().tasks))
    assert report.skipped == []
    assert len(report.imported) == 16 * (len(PUBLISHED_STEPS) + len(FIVE_SHOT_STEPS)) + 13
    return db


def test_every_published_pythia_checkpoint_has_every_task_and_metric(published_db):
    scores, metrics = _scores(published_db, "model LIKE 'pythia-%'"), _expected_metrics()
    assert set(scores["source"]) == {"published"}
    assert set(scores["model"]) == set(SUITE) and len(SUITE) == 16  # pythia-1b-bf16, pythia-v1.1-* named as ours
    for (model, shots), group in scores.groupby(["model", "shots"]):
        expected = PUBLISHED_STEPS if shots == 0 else FIVE_SHOT_STEPS
        assert sorted(set(group["step"])) == expected, (model, shots)
        for step, rows in group.groupby("step"):
            assert set(zip(rows["task"], rows["metric"])) == metrics, (model, shots, step)
            assert len(rows) == len(metrics)
    assert set(scores["shots"]) == {0, 5}
    assert (scores["tokens"] == scores["step"].astype("int64") * TOKENS_PER_STEP).all()
    accuracy = scores[scores["metric"] != "perplexity"]
    assert accuracy["value"].between(0, 1).all() and accuracy["stderr"].ge(0).all()  # step 0 LAMBADA: acc 0, stderr 0


def test_zero_shot_files_named_5shot_are_stored_as_zero_shot(published_db):
    # pythia-1b-bf16/zero-shot/1b-bf16-5shot_step128.json: the config says num_fewshot 0.
    raw = json.loads((PUBLISHED_RAW_DIR / "pythia-v1/pythia-1b-bf16/zero-shot/1b-bf16-5shot_step128.json").read_text())
    rows = _scores(published_db, "model = 'pythia-1b' AND step = 128 AND task = 'piqa' AND metric = 'acc'")
    assert list(rows["shots"]) == [0]
    assert rows["value"].iloc[0] == raw["results"]["piqa"]["acc"]
    assert rows["stderr"].iloc[0] == raw["results"]["piqa"]["acc_stderr"]
    run = store.read_df(published_db, "SELECT model_source FROM runs WHERE run_id = ?", [rows["run_id"].iloc[0]])
    assert list(run["model_source"]) == ["EleutherAI/pythia-v1.1-1b-bf16@step128"]  # provenance kept


def test_baselines_are_single_checkpoints_with_known_sizes(published_db):
    scores = _scores(published_db, "model NOT LIKE 'pythia-%'")
    assert set(scores["model"]) == set(OPT_PARAMS) | set(BLOOM_PARAMS)
    assert scores["step"].isna().all() and set(scores["shots"]) == {0}
    assert (scores.groupby("model").size() == len(_expected_metrics())).all()
    assert {CATALOG.get(m).family for m in scores["model"]} == {"opt", "bloom"}


def test_importing_again_changes_nothing(published_db):
    before = _scores(published_db)
    report = import_paths([PUBLISHED_RAW_DIR], published_db, source="published", seed=False)
    assert report.imported == [] and report.skipped == [] and len(report.unchanged) == 685
    assert _scores(published_db).equals(before)


def test_reference_csv_is_the_import_of_the_raw_files_and_seeds_a_new_store(published_db, tmp_path):
    db = tmp_path / "fresh" / "store.duckdb"
    store.init(db)
    assert _scores(db).equals(_scores(published_db))
    runs = "SELECT * FROM runs ORDER BY run_id"
    assert store.read_df(db, runs).equals(store.read_df(published_db, runs))
    store.init(db)  # an existing store is not seeded twice
    assert len(_scores(db)) == len(_scores(published_db))
    assert SCORES_CSV.read_text().count("\n") == len(_scores(db)) + 1
    assert RUNS_CSV.read_text().count("\n") == 686


def test_cli_import_into_a_seeded_store_finds_everything_stored(tmp_path, capsys):
    db = tmp_path / "store.duckdb"
    assert main(["import", str(PUBLISHED_RAW_DIR / "opt"), "--db", str(db), "--source", "published"]) == 0
    assert capsys.readouterr().out == f"imported 0 files (0 scores, 0 samples) into {db}; 8 already stored\n"


def test_cli_reports_malformed_and_foreign_files_and_imports_the_rest(tmp_path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(ONE_FILE, folder / "good.json")
    (folder / "truncated.json").write_text(ONE_FILE.read_text()[:500])
    shutil.copy(TOKENIZER_DIR / "tokenizer_config.json", folder / "foreign.json")
    other = json.loads(ONE_FILE.read_text())
    other["results"] = {k: v for k, v in other["results"].items() if k not in load_tasks().tasks}
    other["config"]["model_args"] = other["config"]["model_args"].replace("step1000", "step2000")
    (folder / "other_tasks.json").write_text(json.dumps(other))  # stored too: every task is (issue 16)
    db = tmp_path / "store.duckdb"
    assert main(["import", str(folder), "--db", str(db), "--source", "mine"]) == 1
    captured = capsys.readouterr()
    both = ONE_FILE_SCORES + _numbers(other)
    assert captured.out == f"imported 2 files ({both} scores, 0 samples) into {db}; 2 skipped\n"
    assert captured.err.splitlines() == [
        f"evalsuite: skipped {folder / 'foreign.json'}: not an lm-eval results file: no 'results' mapping",
        f"evalsuite: skipped {folder / 'truncated.json'}: not valid JSON ({_json_error(ONE_FILE.read_text()[:500])})",
    ]
    mine = _scores(db, "source = 'mine' AND step = 1000")
    assert len(mine) == ONE_FILE_SCORES and set(mine["model"]) == {"pythia-160m"}
    assert set(_scores(db, "step = 2000")["task"]) == set(other["results"])


def _json_error(text: str) -> str:
    with pytest.raises(json.JSONDecodeError) as caught:
        json.loads(text)
    return str(caught.value)


def test_model_renames_what_the_file_calls_the_model(tmp_path, capsys):
    """Issue 16, item 5: `--model` once failed a file naming another model; it names the rows,
    and the file's own name stays in the run's model_source."""
    db = tmp_path / "store.duckdb"
    assert main(["import", str(ONE_FILE), "--model", "my-160m", "--db", str(db)]) == 0
    capsys.readouterr()
    runs = store.read_df(db, "SELECT model, step, model_source FROM runs WHERE source = 'local'")
    assert runs.to_dict("records") == [{"model": "my-160m", "step": 1000,
                                        "model_source": "EleutherAI/pythia-v1.1-160m@step1000"}]
    assert set(_scores(db, "source = 'local'")["model"]) == {"my-160m"}


def test_model_names_from_model_args():
    assert model_name("EleutherAI/pythia-v1.1-1b-bf16") == ("pythia-1b", None)
    assert model_name("EleutherAI/pythia-v1.1-410m-deduped") == ("pythia-410m-deduped", None)
    assert model_name("facebook/opt-1.3b") == ("opt-1.3b", None)
    assert model_name("bigscience/bloom-1b1") == ("bloom-1b1", None)
    assert model_name("/ckpt/pythia-70m/step1000") == ("pythia-70m", 1000)


TASKS_04 = ["arc_easy", "lambada_openai", "winogrande"]  # WinoGrande: its samples log no right-choice index


@pytest.fixture(scope="module")
def lm_eval_04_dir(tmp_path_factory) -> Path:
    """A real lm-eval 0.4 run (tiny model, 5 documents of 3 tasks) saved as lm-eval's
    EvaluationTracker saves it: results_<date>.json and samples_<task>_<date>.jsonl."""
    import lm_eval
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    from evalsuite.lmeval import backends, definitions, demo

    suite = load_tasks()
    configs = definitions.task_configs(suite.select(TASKS_04), suite.data_dir, 0)
    lm = backends.make_lm(demo.tiny_model(layers=2, width=64, heads=2), demo.tokenizer(), "hf", "8")
    # As backends.simple_evaluate, but handing lm-eval an empty TaskManager: the configs are complete
    # dicts, and indexing lm-eval's thousands of task files again costs more than the run.
    results = lm_eval.simple_evaluate(model=lm, tasks=configs, num_fewshot=0, limit=5, log_samples=True,
                                      task_manager=TaskManager(include_defaults=False))
    out = tmp_path_factory.mktemp("lm-eval-0.4")
    tracker = EvaluationTracker(output_path=str(out))
    samples = results.pop("samples")
    tracker.save_results_aggregated(results=results, samples=samples)
    for task in results["configs"]:
        tracker.save_results_samples(task_name=task, samples=samples[task])
    return out


def test_lm_eval_04_file_without_identity_asks_for_model_and_step(lm_eval_04_dir, tmp_path, capsys):
    db = tmp_path / "store.duckdb"
    assert main(["import", str(lm_eval_04_dir), "--db", str(db)]) == 2
    (path,) = lm_eval_04_dir.rglob("results_*.json")
    assert capsys.readouterr().err == (
        f"evalsuite: skipped {path}: the file does not say which model it evaluated (no pretrained= "
        "in config.model_args); pass --model NAME (and --step N)\n")


def test_lm_eval_04_results_and_samples_import(lm_eval_04_dir, tmp_path, capsys):
    db = tmp_path / "store.duckdb"
    argv = ["import", str(lm_eval_04_dir), "--model", "pythia-demo", "--step", "100", "--db", str(db)]
    assert main(argv) == 0
    assert capsys.readouterr().out == f"imported 1 file (5 scores, 15 samples) into {db}\n"
    (path,) = lm_eval_04_dir.rglob("results_*.json")
    raw = json.loads(path.read_text())
    scores = _scores(db, "source = 'local'")
    assert set(scores["doc_limit"]) == {5} and set(scores["n"]) == {5}
    for row in scores.itertuples():
        name = "perplexity" if row.metric == "perplexity" else row.metric
        assert row.value == raw["results"][row.task][f"{name},none"]
    samples = store.read_df(db, "SELECT * FROM samples WHERE task = 'arc_easy' ORDER BY doc_id")
    docs = [json.loads(line) for line in next(lm_eval_04_dir.rglob("samples_arc_easy_*.jsonl")).open()]
    assert list(samples["target"]) == [int(d["target"]) for d in docs]
    assert list(samples["correct"]) == [d["acc"] == 1.0 for d in docs]
    stored = [ll for lls in samples["loglikelihoods"] for ll in lls]
    assert stored == pytest.approx([float(r[0]) for d in docs for r in d["filtered_resps"]], rel=1e-6)
    wino = store.read_df(db, "SELECT * FROM samples WHERE task = 'winogrande'")  # right choice from acc
    rows = zip(wino.loglikelihoods, wino.target, wino.correct)
    assert [(int(np.argmax(lls)) == target) == right for lls, target, right in rows] == [True] * 5
    assert main(argv) == 0  # again: nothing changes
    assert capsys.readouterr().out.endswith("; 1 already stored\n")
    assert main(argv + ["--source", "my-lab"]) == 0
    capsys.readouterr()
    assert len(_scores(db, "source = 'my-lab'")) == len(scores)
    assert len(store.read_df(db, "SELECT * FROM samples")) == 30


def stored_documents(db: Path) -> list[Document]:
    rows = store.read_df(db, "SELECT * FROM documents ORDER BY task, doc_id").to_dict(orient="records")
    for row in rows:
        row["choices"] = list(row["choices"])
        row["contexts"] = None if row["contexts"] is None or row["contexts"] is pd.NA else list(row["contexts"])
        row["target"] = None if pd.isna(row["target"]) else int(row["target"])
    return [Document(**row) for row in rows]


def test_lm_eval_04_samples_store_the_documents_a_sweep_stores(lm_eval_04_dir, tmp_path):
    """What each doc_id is (data fingerprint, prompt, choices, right answer) comes out of lm-eval's
    samples files as a sweep builds it from lm-eval's requests; a second file adds none again."""
    from evalsuite.lmeval import definitions
    from evalsuite.lmeval.requests import prepare

    db = tmp_path / "store.duckdb"
    assert import_paths([lm_eval_04_dir], db, model="pythia-demo", step=100, seed=False).imported
    suite = load_tasks()
    configs = definitions.task_configs(suite.select(TASKS_04), suite.data_dir, 0)
    swept = sorted(prepare(configs, 0, 5, "local").documents(), key=lambda d: (d.task, d.doc_id))
    assert stored_documents(db) == swept and len(swept) == 15
    assert import_paths([lm_eval_04_dir], db, model="pythia-demo", step=100, source="my-lab").imported
    assert stored_documents(db) == swept


def test_lm_eval_04_identity_comes_from_model_args(lm_eval_04_dir, tmp_path):
    (path,) = lm_eval_04_dir.rglob("results_*.json")
    raw = json.loads(path.read_text())
    raw["config"]["model_args"] = "pretrained=EleutherAI/pythia-70m,revision=step1000,dtype=float16"
    named = tmp_path / "results_whatever.json"
    named.write_text(json.dumps(raw))
    db = tmp_path / "store.duckdb"
    report = import_paths([named], db, seed=False)
    assert report.skipped == [] and report.scores == 5
    runs = store.read_df(db, "SELECT model, step, dtype, model_source, lm_eval_version FROM runs")
    assert runs.to_dict("records") == [{
        "model": "pythia-70m", "step": 1000, "dtype": "float16",
        "model_source": "EleutherAI/pythia-70m@step1000", "lm_eval_version": raw["lm_eval_version"]}]


def test_baseline_parameter_counts_are_the_architectures():
    import torch
    from transformers import BloomConfig, BloomForCausalLM, OPTConfig, OPTForCausalLM

    opt = {"opt-125m": (12, 12, 768), "opt-350m": (24, 16, 1024), "opt-1.3b": (24, 32, 2048),
           "opt-2.7b": (32, 32, 2560), "opt-6.7b": (32, 32, 4096), "opt-13b": (40, 40, 5120),
           "opt-30b": (48, 56, 7168), "opt-66b": (64, 72, 9216)}
    bloom = {"bloom-560m": (24, 16, 1024), "bloom-1b1": (24, 16, 1536), "bloom-1b7": (24, 16, 2048),
             "bloom-3b": (30, 32, 2560), "bloom-7b1": (30, 32, 4096)}
    with torch.device("meta"):
        for name, (layers, heads, width) in opt.items():
            small = name == "opt-350m"  # projects 512-wide embeddings in and out; post-norm
            config = OPTConfig(num_hidden_layers=layers, num_attention_heads=heads, hidden_size=width,
                               ffn_dim=4 * width, word_embed_proj_dim=512 if small else width,
                               do_layer_norm_before=not small, vocab_size=50272)
            assert sum(p.numel() for p in OPTForCausalLM(config).parameters()) == OPT_PARAMS[name]
        for name, (layers, heads, width) in bloom.items():
            config = BloomConfig(n_layer=layers, n_head=heads, hidden_size=width, vocab_size=250880)
            assert sum(p.numel() for p in BloomForCausalLM(config).parameters()) == BLOOM_PARAMS[name]
    assert CATALOG.get("pythia-1.4b-deduped").family == "pythia-deduped"
    assert CATALOG.get("pythia-demo") is None


def test_a_pythia_hub_model_without_revision_is_its_final_checkpoint(tmp_path):
    raw = json.loads(ONE_FILE.read_text())
    raw["config"]["model_args"] = "pretrained=EleutherAI/pythia-160m"
    (tmp_path / "main.json").write_text(json.dumps(raw))
    report = import_paths([tmp_path / "main.json"], tmp_path / "store.duckdb", seed=False)
    assert report.scores == ONE_FILE_SCORES
    assert set(_scores(tmp_path / "store.duckdb")["step"]) == {FINAL_STEP}


def test_an_imported_file_is_local_unless_the_source_is_named(tmp_path, capsys):
    """Issue 11, item 2: lm-eval 0.3 files (the published shape, easy to forge) defaulted to
    source 'published'. Now only an explicit --source published says so."""
    db = tmp_path / "store.duckdb"
    assert main(["import", str(ONE_FILE), "--db", str(db)]) == 0
    assert capsys.readouterr().out == f"imported 1 file ({ONE_FILE_SCORES} scores, 0 samples) into {db}\n"
    assert len(_scores(db, "source = 'local'")) == ONE_FILE_SCORES
    assert main(["import", str(ONE_FILE), "--db", str(db), "--source", "published"]) == 0
    assert capsys.readouterr().out.endswith("; 1 already stored\n")  # it is the shipped file
