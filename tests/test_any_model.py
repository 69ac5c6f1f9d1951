"""Any model, end to end with the real command: a tiny training run of two architectures (GPT-NeoX
saved by hand as stepN/, Llama saved by the Hugging Face Trainer as checkpoint-N/; random weights,
the real Pythia tokenizer, a few real optimizer steps), a PolyPythia seed from a Hub repository
(a fake HF cache) by its name and by its repository id in another case, and a released model (a
repository with no step revisions); then the dashboard on what they stored."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from evalsuite import store
from evalsuite.paths import TASK_DATA_DIR

from conftest import assert_clean, open_app, run_evalsuite

pytestmark = pytest.mark.slow

ARGS = ["--tasks", "lambada_openai", "--limit", "3"]  # one task, three documents: each run takes seconds
NEOX_STEPS, TRAINER_STEPS = [0, 2, 4], [2, 4]
TOKENS_PER_STEP = 4 * 64  # the runs' batch: 4 sequences of 64 tokens


def _batches(tok):
    """ARC-Easy *train* questions with an answer (never an evaluation split), as 64-token rows."""
    rows = [json.loads(line) for line in (TASK_DATA_DIR / "arc_easy" / "train.jsonl").open()][:32]
    texts = [f"Question: {r['question']}\nAnswer: {r['choices']['text'][0]}" for r in rows]
    return tok(texts, truncation=True, max_length=64, padding="max_length", return_tensors="pt")["input_ids"]


def _train_neox(root: Path, tok, ids) -> int:
    """A GPT-NeoX trained by hand, saved as stepN/ (model and tokenizer) every 2 steps."""
    import torch
    from transformers import GPTNeoXForCausalLM

    from evalsuite.lmeval.demo import tiny_config

    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(tiny_config(layers=2, width=64, heads=2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(max(NEOX_STEPS) + 1):
        if step in NEOX_STEPS:
            model.save_pretrained(root / f"step{step}")
            tok.save_pretrained(root / f"step{step}")
        batch = ids[4 * step:4 * step + 4]
        model(input_ids=batch, labels=batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return sum(p.numel() for p in model.parameters())


def _train_llama(root: Path, tok, ids) -> int:
    """A Llama trained by the Hugging Face Trainer, which saves checkpoint-N/ every 2 steps."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments

    class Data(torch.utils.data.Dataset):
        def __len__(self):
            return len(ids)

        def __getitem__(self, i):
            return {"input_ids": ids[i], "labels": ids[i]}

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=50304, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=2048, bos_token_id=0, eos_token_id=0,
        tie_word_embeddings=False))
    args = TrainingArguments(output_dir=str(root), max_steps=max(TRAINER_STEPS), save_steps=2,
                             per_device_train_batch_size=4, learning_rate=3e-3, report_to=[], use_cpu=True,
                             logging_steps=100, disable_tqdm=True)
    Trainer(model=model, args=args, train_dataset=Data(), processing_class=tok).train()
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def training_run(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    """DIR/my-neox/step{0,2,4}/ and DIR/my-llama/checkpoint-{2,4}/, and each model's parameters."""
    from evalsuite.lmeval.demo import tokenizer

    root = tmp_path_factory.mktemp("runs")
    tok = tokenizer()
    ids = _batches(tok)
    params = {"my-neox": _train_neox(root / "my-neox", tok, ids), "my-llama": _train_llama(root / "my-llama", tok, ids)}
    return root, params


def _cache_repo(hub: Path, repo: str, snapshots: dict[str, Path]) -> None:
    folder = hub / ("models--" + repo.replace("/", "--"))
    (folder / "refs").mkdir(parents=True)
    for ref, files in snapshots.items():
        sha = hashlib.sha1(f"{repo}@{ref}".encode()).hexdigest()
        shutil.copytree(files, folder / "snapshots" / sha)
        (folder / "refs" / ref).write_text(sha)


@pytest.fixture(scope="module")
def stored(tmp_path_factory, hf_home, checkpoints, training_run) -> tuple[Path, dict]:
    """One store filled by four real `evalsuite run` commands; their outputs by name."""
    home = tmp_path_factory.mktemp("home")
    shutil.copytree(hf_home, home, dirs_exist_ok=True)
    _cache_repo(home / "hub", "EleutherAI/pythia-160m-seed3",  # a PolyPythia seed, at a tiny shape
                {f"step{s}": checkpoints / f"step{s}" for s in (1000, 2000)})
    _cache_repo(home / "hub", "someone/tiny-released", {"main": checkpoints / "step3000"})  # no step revisions
    db = tmp_path_factory.mktemp("any") / "store.duckdb"
    root, _ = training_run
    commands = {
        "run": ["--model", "my-neox,my-llama", "--model-path", str(root), "--tokens-per-step", str(TOKENS_PER_STEP)],
        "seed": ["--model", "pythia-160m-seed3", "--steps", "1000,2000"],
        "seed-by-repo": ["--model", "EleutherAI/Pythia-160m-SEED3", "--steps", "2000"],  # stored already
        "released": ["--model", "someone/tiny-released"],
    }
    out = {}
    for name, args in commands.items():
        result = run_evalsuite(home, db, "run", *args, *ARGS)
        assert result.returncode == 0, (name, result.stderr[-3000:])
        out[name] = result.stdout
    return db, out


def _rows(db: Path, sql: str) -> list[list]:
    frame = store.read_df(db, sql)
    return frame.astype(object).where(frame.notna(), None).values.tolist()


def test_a_training_run_of_two_architectures_is_stored_under_its_name_step_and_tokens(stored, training_run):
    db, out = stored
    root, params = training_run
    assert "0 of 5 checkpoints already stored; 5 to evaluate" in out["run"]
    steps = _rows(db, "SELECT DISTINCT model, step, tokens FROM scores WHERE model LIKE 'my-%' ORDER BY ALL")
    assert steps == [["my-llama", s, s * TOKENS_PER_STEP] for s in TRAINER_STEPS] + \
        [["my-neox", s, s * TOKENS_PER_STEP] for s in NEOX_STEPS]
    sources = _rows(db, "SELECT model, step, model_source FROM runs WHERE model LIKE 'my-%' ORDER BY ALL")
    assert sources[0] == ["my-llama", 2, str(root / "my-llama" / "checkpoint-2")]
    assert sources[-1] == ["my-neox", 4, str(root / "my-neox" / "step4")]
    models = _rows(db, "SELECT model, family, params, tokens_per_step, checkpoints FROM models "
                       "WHERE model LIKE 'my-%' ORDER BY model")
    assert models == [["my-llama", "other", params["my-llama"], TOKENS_PER_STEP, 2],
                      ["my-neox", "other", params["my-neox"], TOKENS_PER_STEP, 3]]  # parameters counted
    ppl = _rows(db, "SELECT model, step, value FROM scores WHERE metric = 'perplexity' AND model LIKE 'my-%'")
    for model in params:  # real optimizer steps: each checkpoint scores differently
        values = [v for m, _, v in ppl if m == model]
        assert len(set(values)) == len(values) > 1


def test_a_polypythia_seed_by_name_and_by_repository_id_is_one_model(stored):
    db, out = stored
    assert "1 of 1 checkpoints already stored; 0 to evaluate" in out["seed-by-repo"]
    assert _rows(db, "SELECT DISTINCT model, step, tokens FROM scores WHERE model LIKE '%seed3' ORDER BY step") == [
        ["pythia-160m-seed3", 1000, 1000 * 2_097_152], ["pythia-160m-seed3", 2000, 2000 * 2_097_152]]
    assert _rows(db, "SELECT model_source FROM runs WHERE model = 'pythia-160m-seed3' ORDER BY step") == [
        ["EleutherAI/pythia-160m-seed3@step1000"], ["EleutherAI/pythia-160m-seed3@step2000"]]
    assert _rows(db, "SELECT family, params FROM models WHERE model = 'pythia-160m-seed3'") == [
        ["polypythias", 162_322_944]]  # the catalog's, not the tiny stand-in's


def test_a_released_model_is_stored_with_no_step_and_no_tokens(stored):
    db, out = stored
    assert "\ntiny-released  -  " in out["released"]  # the run's summary: no step
    assert _rows(db, "SELECT DISTINCT model, step, tokens FROM scores WHERE model = 'tiny-released'") == [
        ["tiny-released", None, None]]
    assert _rows(db, "SELECT model_source FROM runs WHERE model = 'tiny-released'") == [["someone/tiny-released@main"]]
    assert _rows(db, "SELECT repo, checkpoints FROM models WHERE model = 'tiny-released'") == [
        ["someone/tiny-released", 1]]


def _app(db: Path, monkeypatch, **params):
    at = open_app(db, monkeypatch, timeout=90, **params)
    assert_clean(at)
    return at


def _chart_rows(at: AppTest) -> list[pd.DataFrame]:
    import pyarrow as pa

    return [pd.concat([pa.ipc.open_stream(d.data.data).read_pandas() for d in chart.proto.datasets])
            for chart in at.get("vega_lite_chart")]


def test_the_dashboard_groups_by_family_and_draws_every_model(stored, monkeypatch, training_run):
    db, _ = stored
    _, params = training_run
    at = _app(db, monkeypatch, task="lambada_openai", metric="perplexity", x="tokens")
    picker = at.sidebar.multiselect(key="models")
    labels = picker.options
    assert {"other · my-neox", "PolyPythias · pythia-160m-seed3", "Pythia · pythia-70m"} <= set(labels)
    assert labels.index("Pythia · pythia-70m") < labels.index("PolyPythias · pythia-160m-seed3") < \
        labels.index("other · my-neox")  # grouped: Pythia's families first, 'other' last
    (rows,) = _chart_rows(at)
    assert {"my-neox", "my-llama", "pythia-160m-seed3"} <= set(rows["model"])
    neox = rows[rows["model"] == "my-neox"].drop_duplicates("step")
    assert sorted(zip(neox["step"], neox["tokens"])) == [(s, s * TOKENS_PER_STEP) for s in NEOX_STEPS]
    assert "tiny-released" in set(rows["model"])  # the released model: a reference line
    assert any("x axis: tokens seen" in c.value for c in at.caption)
    at = _app(db, monkeypatch, view="scaling", task="lambada_openai", metric="perplexity")
    scaled = pd.concat(_chart_rows(at))
    point = scaled[scaled["model"] == "my-neox"].drop_duplicates("model")
    assert point["params"].tolist() == [params["my-neox"]] and point["step"].tolist() == [max(NEOX_STEPS)]
    at = _app(db, monkeypatch, view="items", task="lambada_openai")
    assert "other · my-neox" in at.selectbox(key="model").options
