"""The demo model: a tiny GPT-NeoX (pythia-14m's shape) built locally with the real Pythia tokenizer.

It is NOT Pythia. It exists so that `evalsuite run` works on a fresh machine with no GPU and no Hub:
`build_demo_checkpoints` trains it for a dozen steps on English prose that ships with the
project (data/prose: Pride and Prejudice, public domain; never an evaluation document) and saves a
Hugging Face checkpoint per step, so the demo has a training curve, one that shows learning:
its LAMBADA perplexity falls from each saved checkpoint to the next (tests/test_demo.py).
Tests and benchmarks use `tiny_config` / `tiny_model` for models of any Pythia shape.
"""

from __future__ import annotations

from pathlib import Path

from evalsuite.paths import DEMO_MODEL_DIR, PROSE_DIR

DEMO_NAME = "pythia-demo"
DEMO_STEPS = [0, 4, 8, 12]
DEMO_LIMIT = 100  # documents per task: keeps the CPU demo to about a minute a checkpoint


def tiny_config(layers: int = 6, width: int = 128, heads: int = 4, vocab: int = 50304):
    """A GPTNeoXConfig with Pythia's hyper-parameters at any shape (default: pythia-14m)."""
    from transformers import GPTNeoXConfig

    return GPTNeoXConfig(
        vocab_size=vocab, hidden_size=width, num_hidden_layers=layers,
        num_attention_heads=heads, intermediate_size=4 * width, max_position_embeddings=2048,
        # Pythia's own config.json names: transformers 5 maps them to rope_parameters (its typed
        # signature no longer lists them), 4.x reads them as they are.
        rotary_pct=0.25, rotary_emb_base=10000,  # type: ignore[call-arg]
        use_parallel_residual=True,
        tie_word_embeddings=False, bos_token_id=0, eos_token_id=0,
    )


def shapes() -> dict[str, dict[str, int]]:
    """Pythia's shapes by size ('14m', '70m' ... '12b'), as keyword arguments of tiny_model."""
    from evalsuite.catalog.pythia import SIZES

    return {size: dict(layers=layers, width=width, heads=heads) for size, (layers, width, heads, _) in SIZES.items()}


def tiny_model(seed: int = 0, **shape):
    """A randomly initialised GPTNeoXForCausalLM in eval mode."""
    import torch
    from transformers import GPTNeoXForCausalLM

    torch.manual_seed(seed)
    return GPTNeoXForCausalLM(tiny_config(**shape)).eval()


def tokenizer():
    from evalsuite.lmeval.backends import load_tokenizer

    return load_tokenizer()


TRAINING_TEXT = PROSE_DIR / "pride-and-prejudice.txt"
# Why so few steps: LAMBADA's targets are mostly words (names above all) that this short text
# never shows. The first steps teach the model which tokens English prose uses, and LAMBADA's
# perplexity falls; longer training then sharpens it onto the prose's frequent words, and
# LAMBADA's perplexity rises again until a model learns to copy from the context (far beyond
# a CPU demo). Measured on LAMBADA's first 40 documents: 2.00e5, 1.87e5, 1.67e5, 1.55e5 at steps
# 0, 4, 8, 12, and back at 1.7e5 by step 20 (2.2e5 by step 45; those runs used label smoothing,
# which made no difference up to step 12).
LEARNING_RATE = 1e-3


def _training_batches(tok, seq_len: int = 128, batch: int = 8):
    """Endless batches of the training prose, in random order."""
    import torch

    ids = torch.tensor(tok(TRAINING_TEXT.read_text(), verbose=False)["input_ids"])  # one long text: no length warning
    n = (len(ids) // seq_len) * seq_len
    chunks = ids[:n].view(-1, seq_len)
    gen = torch.Generator().manual_seed(0)
    while True:
        for idx in torch.randperm(len(chunks), generator=gen).split(batch):
            yield chunks[idx]


# Written beside the checkpoints: checkpoints an older recipe built (on ARC-Easy's train split)
# are built again, not evaluated as if they were these.
RECIPE = "prose-v1"  # change it with the recipe (text, steps, learning rate)


def is_built(out_dir: Path = DEMO_MODEL_DIR, steps: list[int] = DEMO_STEPS) -> bool:
    recipe = Path(out_dir) / "recipe.txt"
    return (recipe.is_file() and recipe.read_text().strip() == RECIPE
            and all((Path(out_dir) / f"step{s}" / "config.json").exists() for s in steps))


def build_demo_checkpoints(out_dir: Path = DEMO_MODEL_DIR, steps: list[int] = DEMO_STEPS,
                           progress: bool = False) -> Path:
    """Train the demo model and save `out_dir/step<N>` for each step; skips if already built."""
    import torch
    from tqdm import tqdm

    out_dir = Path(out_dir)
    if is_built(out_dir, steps):
        return out_dir
    torch.manual_seed(0)
    tok, model = tokenizer(), tiny_model(seed=0)
    model.train()
    optim = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    batches = _training_batches(tok)
    for step in tqdm(range(max(steps) + 1), desc="training the demo model", unit="step",
                     disable=not progress):
        if step in steps:
            model.eval()
            model.save_pretrained(out_dir / f"step{step}")
            tok.save_pretrained(out_dir / f"step{step}")
            model.train()
        if step == max(steps):
            break
        batch = next(batches)
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optim.step()
        optim.zero_grad()
    (out_dir / "recipe.txt").write_text(RECIPE + "\n")
    return out_dir
