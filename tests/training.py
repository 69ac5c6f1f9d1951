"""A tiny training run for the watch and in-loop tests: a 2-layer GPT-NeoX (random init, the real
Pythia tokenizer) trained on ARC-Easy *train* questions (never an evaluation split).

`python tests/training.py OUT --save 0,2,4,6 [--pause S] [--slow-write S]` trains with a plain
loop and saves OUT/stepN/ with save_pretrained at each listed step, as a researcher's script
would. --slow-write writes each model.safetensors in two halves with S seconds between them (a
big checkpoint on a slow disk), the tokenizer first, so a watcher sees it incomplete for a while.
`trainer(...)` is the same model under the Hugging Face Trainer (callbacks, checkpoint-N/).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

TOKENS = 64  # tokens per row
BATCH = 4


def batches(tok, rows: int = 64):
    """ARC-Easy train questions with their first choice, as 64-token rows."""
    from evalsuite.paths import TASK_DATA_DIR

    lines = [json.loads(line) for line in (TASK_DATA_DIR / "arc_easy" / "train.jsonl").open()][:rows]
    texts = [f"Question: {r['question']}\nAnswer: {r['choices']['text'][0]}" for r in lines]
    return tok(texts, truncation=True, max_length=TOKENS, padding="max_length", return_tensors="pt")["input_ids"]


def model(seed: int = 0, dropout: float = 0.0):
    import torch
    from transformers import GPTNeoXForCausalLM

    from evalsuite.lmeval.demo import tiny_config

    torch.manual_seed(seed)
    config = tiny_config(layers=2, width=64, heads=2)
    config.hidden_dropout = config.attention_dropout = dropout  # dropout draws from torch's RNG
    return GPTNeoXForCausalLM(config)


def save(net, tok, folder: Path, slow_write: float) -> None:
    """save_pretrained into `folder`; with slow_write, the weights arrive in two halves."""
    if not slow_write:
        net.save_pretrained(folder)
        tok.save_pretrained(folder)
        return
    with tempfile.TemporaryDirectory() as staging:
        net.save_pretrained(staging)
        folder.mkdir(parents=True)
        tok.save_pretrained(folder)
        shutil.copy(Path(staging) / "config.json", folder)
        data = (Path(staging) / "model.safetensors").read_bytes()
        with (folder / "model.safetensors").open("wb") as out:
            out.write(data[:len(data) // 2])
            out.flush()
            time.sleep(slow_write)
            out.write(data[len(data) // 2:])


def train(out: Path, save_at: list[int], pause: float = 0.0, slow_write: float = 0.0) -> list[float]:
    """The plain loop: one AdamW step per batch, OUT/stepN/ at each step in save_at; the losses."""
    import torch

    from evalsuite.lmeval.demo import tokenizer

    tok = tokenizer()
    ids, net = batches(tok), model()
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3)
    losses = []
    for step in range(max(save_at) + 1):
        if step in save_at:
            save(net, tok, out / f"step{step}", slow_write)
            time.sleep(pause)
        if step == max(save_at):
            break
        batch = ids[BATCH * step % len(ids):][:BATCH]
        loss = net(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def loop_losses(steps: int, evaluate=None) -> list[float]:
    """A plain loop as a researcher writes one: the model put in train mode once, batches drawn
    with Python's and numpy's RNGs, dropout from torch's; `evaluate(model, tokenizer, step)` called
    after every second step. The losses, which must not depend on whether it is called."""
    import random

    import numpy as np
    import torch

    from evalsuite.lmeval.demo import tokenizer

    tok = tokenizer()
    ids, net = batches(tok), model(dropout=0.1)
    random.seed(0)
    np.random.seed(0)
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3)
    net.train()
    losses = []
    for step in range(1, steps + 1):
        rows = random.sample(range(len(ids)), BATCH)
        batch = ids[rows]
        batch = batch[:, : TOKENS - int(np.random.randint(0, 8))]
        loss = net(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        if evaluate is not None and step % 2 == 0:
            evaluate(net, tok, step)
    return losses


def trainer(out: Path, steps: int, save_steps: int, callbacks: list, dropout: float = 0.1):
    """The Hugging Face Trainer on the same model (with dropout, so any RNG use shows in the losses),
    logging every step's loss; returns the trained Trainer."""
    import torch
    from transformers import Trainer, TrainingArguments

    from evalsuite.lmeval.demo import tokenizer

    tok = tokenizer()
    ids = batches(tok)

    class Data(torch.utils.data.Dataset):
        def __len__(self):
            return len(ids)

        def __getitem__(self, i):
            return {"input_ids": ids[i], "labels": ids[i]}

    args = TrainingArguments(output_dir=str(out), max_steps=steps, save_steps=save_steps, logging_steps=1,
                             per_device_train_batch_size=BATCH, learning_rate=3e-3, report_to=[], use_cpu=True,
                             disable_tqdm=True, seed=0, data_seed=0)
    run = Trainer(model=model(dropout=dropout), args=args, train_dataset=Data(), processing_class=tok,
                  callbacks=callbacks)
    run.train()
    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--save", default="0,2,4,6")
    parser.add_argument("--pause", type=float, default=0.0)
    parser.add_argument("--slow-write", type=float, default=0.0)
    args = parser.parse_args()
    train(args.out, [int(s) for s in args.save.split(",")], args.pause, args.slow_write)


if __name__ == "__main__":
    main()
