"""The lm-eval model objects a loaded checkpoint is scored through: lm-eval's own `hf` or
evalsuite's fast backend (for the architectures it scores exactly: `choose_backend`), the
tokenizer they share, and lm-eval's own `simple_evaluate` (the reference the sweep's prepared
requests are tested against).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evalsuite.catalog.models import Checkpoint
from evalsuite.errors import EvalsuiteError, first_line
from evalsuite.paths import TOKENIZER_DIR

# A saved tokenizer has one of these (tokenizer.json: fast; the config: every kind)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def quiet_libraries() -> None:
    """lm-eval, datasets and transformers log and draw progress bars per task; a sweep draws one."""
    import logging
    import os

    os.environ["TQDM_DISABLE"] = "1"  # every tqdm that is not explicitly enabled (ours is)
    for name in ("lm_eval", "lm-eval", "datasets", "transformers", "accelerate", "evaluate"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()  # "Loading weights" on the prefetch thread


def load_tokenizer(folder: Path = TOKENIZER_DIR):
    """Every Pythia checkpoint uses the same GPT-NeoX-20B tokenizer: the shipped copy is it (a
    cluster worker passes the copy the driver sent it). Other models bring their own
    (load_model_tokenizer)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


@dataclass(frozen=True)
class BackendChoice:
    """The backend that scores a model (what its run records) and, when it is not the one asked
    for, one line saying why."""

    backend: str  # 'fast' or 'hf'
    note: str | None = None


def choose_backend(model, asked: str) -> BackendChoice:
    """`asked`, unless it is the fast backend and the model's architecture is not one it scores
    exactly (lmeval/architectures.py): then lm-eval's `hf`, which scores any causal LM."""
    from evalsuite.lmeval.architectures import fallback_reason

    reason = fallback_reason(model) if asked == "fast" else None
    if reason is None:
        return BackendChoice(asked)
    return BackendChoice("hf", f"the fast backend does not score {reason} exactly: "
                               "scored with lm-eval's hf backend instead")


def load_model_tokenizer(where: Checkpoint):
    """A model's own tokenizer: from a checkpoint folder, or its Hub repository at that revision
    (the HF cache first, as checkpoints load: no network at all when its files are there; with
    the Hub unreachable, transformers would retry each file for minutes before looking there);
    an EvalsuiteError in one line when it cannot be had."""
    from transformers import AutoTokenizer

    from evalsuite.lmeval.checkpoints import cached_snapshot

    try:
        if where.local_dir is not None:
            return AutoTokenizer.from_pretrained(where.local_dir)
        snapshot = cached_snapshot(where)
        if snapshot is not None and any((snapshot / name).exists() for name in TOKENIZER_FILES):
            return AutoTokenizer.from_pretrained(snapshot)
        return AutoTokenizer.from_pretrained(where.repo_id, revision=where.revision)
    except Exception as exc:  # noqa: BLE001 - a missing file, no network, a broken tokenizer.json
        raise EvalsuiteError(f"cannot load the tokenizer of {where.model} from {where.describe()}: "
                             f"{first_line(exc)[:200] or type(exc).__name__}") from None


def make_lm(model, tokenizer, backend: str, batch_size: str):
    """The lm-eval model object for a loaded checkpoint: lm-eval's `hf`, or our fast backend."""
    if backend == "hf":
        from lm_eval.models.huggingface import HFLM

        # lm-eval's own 'auto' probes for the largest batch that fits: right on a GPU, but on a CPU
        # it grows until memory runs out, so there 'auto' means lm-eval's usual 32.
        on_gpu = next(model.parameters()).device.type == "cuda"
        bs = int(batch_size) if batch_size != "auto" else ("auto" if on_gpu else 32)
        return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=bs)
    if backend == "fast":
        from evalsuite.lmeval.fast_backend import FastLM

        return FastLM(model=model, tokenizer=tokenizer, batch_size=batch_size)
    raise EvalsuiteError(f"unknown backend {backend!r}; valid: fast, hf")


def simple_evaluate(lm, configs: list[dict], shots: int, limit: int | None) -> dict:
    """lm-eval's simple_evaluate over the tasks (full configs from task_configs), with samples."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    from evalsuite.lmeval.evaluate import BOOTSTRAP_ITERS

    return lm_eval.simple_evaluate(
        model=lm, tasks=configs, num_fewshot=shots, limit=limit, log_samples=True,
        # The configs are complete: an empty manager spares re-indexing every lm-eval task file.
        task_manager=TaskManager(include_defaults=False),
        bootstrap_iters=BOOTSTRAP_ITERS,  # as a sweep's own metrics: the stderrs must agree
    )
