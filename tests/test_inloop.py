"""In-loop evaluation: `evalsuite.evaluate_model` on a model in memory stores what `run` stores for
the same weights saved as a checkpoint, leaves the training state as it was, and builds lm-eval's
requests once per process; `evalsuite.EvalCallback` under the real Hugging Face Trainer evaluates
at each save and leaves the training losses bitwise the same as a run without it."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import evalsuite
from evalsuite import store
from evalsuite.cli import main
from evalsuite.lmeval.demo import tokenizer
from evalsuite.sweep import inloop, job

import training

TASKS = ["lambada_openai", "arc_easy"]
LIMIT = 3


def _scores(db: Path, model: str) -> dict:
    rows = store.read_df(db, "SELECT step, task, metric, value, stderr FROM scores WHERE model = ?", [model])
    return {(int(r.step), r.task, r.metric): (r.value, r.stderr) for r in rows.itertuples()}


def test_evaluate_model_stores_what_run_stores_for_the_same_weights(tmp_path):
    net, tok = training.model(seed=3), tokenizer()
    net.save_pretrained(tmp_path / "run" / "step7")
    tok.save_pretrained(tmp_path / "run" / "step7")
    by_run = tmp_path / "run.duckdb"
    assert main(["run", "--model", "mine", "--model-path", str(tmp_path / "run"), "--tasks", ",".join(TASKS),
                 "--limit", str(LIMIT), "--device", "cpu", "--db", str(by_run)]) == 0
    stored = evalsuite.evaluate_model(net, tok, model_name="mine", step=7, tasks=TASKS, limit=LIMIT,
                                      db=tmp_path / "inloop.duckdb")
    in_loop = _scores(tmp_path / "inloop.duckdb", "mine")
    assert in_loop and in_loop == _scores(by_run, "mine")
    assert sorted(stored.written) == sorted(TASKS) and stored.run.step == 7
    assert stored.score("arc_easy") == in_loop[(7, "arc_easy", "acc")][0]
    run = store.read_df(tmp_path / "inloop.duckdb", "SELECT * FROM runs WHERE model = 'mine'").iloc[0]
    assert (run["backend"], run["doc_limit"], run["dtype"]) == ("fast", LIMIT, "float32")
    assert run["model_source"].startswith("in memory")
    samples = store.read_df(tmp_path / "inloop.duckdb", "SELECT count(*) AS n FROM samples")["n"].iloc[0]
    assert samples == LIMIT * len(TASKS)


def test_the_training_state_is_left_as_it_was(tmp_path):
    net = training.model(seed=1, dropout=0.1).train()
    net.gpt_neox.layers[0].eval()  # a module in its own mode stays in it
    random.seed(11)
    np.random.seed(12)
    torch.manual_seed(13)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(11)
    np.random.seed(12)
    torch.manual_seed(13)
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    evalsuite.evaluate_model(net, tokenizer(), model_name="mine", step=1, tasks=["arc_easy"], limit=LIMIT,
                             db=tmp_path / "s.duckdb")
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
    assert net.training and not net.gpt_neox.layers[0].training and net.gpt_neox.layers[1].training
    assert torch.is_grad_enabled()
    assert all(torch.equal(p, before[name]) for name, p in net.named_parameters())


def test_requests_are_built_once_per_process(tmp_path, monkeypatch):
    built = []
    real = job.prepare_requests
    monkeypatch.setattr(job, "prepare_requests", lambda cfg: built.append(cfg) or real(cfg))
    monkeypatch.setattr(inloop, "_PREPARED", {})
    net, tok = training.model(seed=2), tokenizer()
    for step in (1, 2, 3):
        evalsuite.evaluate_model(net, tok, model_name="mine", step=step, tasks=["lambada_openai"], limit=LIMIT,
                                 db=tmp_path / "s.duckdb")
    assert len(built) == 1
    again = evalsuite.evaluate_model(net, tok, model_name="mine", step=3, tasks=["lambada_openai"], limit=LIMIT,
                                     db=tmp_path / "s.duckdb")
    assert again.written == []  # stored once: a second evaluation of a step adds nothing


@pytest.mark.slow
def test_the_trainer_callback_evaluates_each_save_and_leaves_losses_bitwise_equal(tmp_path):
    callback = evalsuite.EvalCallback(model_name="trained", tasks=["lambada_openai"], limit=LIMIT,
                                      db=tmp_path / "s.duckdb")
    with_eval = training.trainer(tmp_path / "with", steps=4, save_steps=2, callbacks=[callback])
    without = training.trainer(tmp_path / "without", steps=4, save_steps=2, callbacks=[])
    losses = [[h["loss"] for h in t.state.log_history if "loss" in h] for t in (with_eval, without)]
    assert len(losses[0]) == 4 and losses[0] == losses[1]
    assert [e.run.step for e in callback.evaluated] == [2, 4]
    rows = store.read_df(tmp_path / "s.duckdb", "SELECT step, count(*) AS n FROM runs WHERE model = 'trained' "
                                                "GROUP BY step ORDER BY step")
    assert rows.values.tolist() == [[2, 1], [4, 1]]
    # the Trainer's own checkpoint-N/ folders, read back by `watch`, score as the callback did in memory
    assert main(["watch", str(tmp_path / "with"), "--model", "trained", "--once", "--tasks", "lambada_openai",
                 "--limit", str(LIMIT), "--device", "cpu", "--db", str(tmp_path / "disk.duckdb")]) == 0
    assert _scores(tmp_path / "disk.duckdb", "trained") == _scores(tmp_path / "s.duckdb", "trained")


def test_evaluating_inside_a_plain_loop_leaves_its_losses_bitwise_equal(tmp_path):
    def evaluate(net, tok, step):
        evalsuite.evaluate_model(net, tok, model_name="looped", step=step, tasks=["lambada_openai"], limit=LIMIT,
                                 db=tmp_path / "s.duckdb")

    with_eval, without = training.loop_losses(6, evaluate), training.loop_losses(6)
    assert with_eval == without
    assert sorted(_scores(tmp_path / "s.duckdb", "looped")) == [(s, "lambada_openai", m) for s in (2, 4, 6)
                                                                 for m in ("acc", "perplexity")]


@pytest.mark.slow
def test_every_n_steps_evaluates_between_saves(tmp_path):
    callback = evalsuite.EvalCallback(model_name="trained", tasks=["lambada_openai"], limit=LIMIT,
                                      db=tmp_path / "s.duckdb", every=1)
    training.trainer(tmp_path / "out", steps=3, save_steps=100, callbacks=[callback])
    assert [e.run.step for e in callback.evaluated] == [1, 2, 3]


def test_import_evalsuite_loads_no_torch_until_the_callback_is_asked_for():
    code = ("import sys, evalsuite; assert 'torch' not in sys.modules and 'transformers' not in sys.modules; "
            "evalsuite.EvalCallback; assert 'transformers' in sys.modules; print(evalsuite.evaluate_model.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "evaluate_model"
