"""Loading checkpoints: where (model, step) comes from, reading it into host memory, and placing
it on the device.

`load_to_host` resolves a checkpoint (catalog.models.Checkpoint: a local folder, the HF cache, or
the Hub with its revision) and reads it into host memory, or fails within seconds with a one-line error
naming it (`CheckpointError` when only this checkpoint is at fault); `place_on_device` moves it
to the accelerator once the previous model is gone (`load_checkpoint` does both). Also the
device, dtype and environment a run records.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalsuite.catalog.models import Checkpoint
from evalsuite.errors import CheckpointError, EvalsuiteError, first_line
from evalsuite.lmeval import hub


def pick_device(device: str | None) -> str:
    import torch

    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(dtype: str | None, device: str) -> str:
    """float16 on GPU, as EleutherAI's published runs; float32 on CPU."""
    if dtype:
        if dtype not in ("float16", "bfloat16", "float32"):
            raise EvalsuiteError(f"unknown dtype {dtype!r}; valid: float16, bfloat16, float32")
        return dtype
    return "float16" if device.startswith("cuda") else "float32"


@dataclass
class LoadedCheckpoint:
    """A checkpoint read into memory, and exactly what was read (for the runs table)."""

    checkpoint: Checkpoint
    model: Any  # a causal LM in eval mode: on the host until place_on_device; None once released
    commit: str | None  # the Hub commit (the HF cache's snapshot folder name); None for a local folder
    origin: str  # "folder" (--model-path, the demo), "hf-cache" (no network), or "hub" (downloaded now)

    def release(self) -> None:
        """Drop the model; the record stays. It is freed once nothing else (an lm-eval LM) holds it."""
        self.model = None


def load_checkpoint(ckpt: Checkpoint, dtype: str, device: str):
    """A causal LM (AutoModelForCausalLM) in eval mode on `device`, or an EvalsuiteError within seconds."""
    return place_on_device(load_to_host(ckpt, dtype), device).model


def load_to_host(ckpt: Checkpoint, dtype: str) -> LoadedCheckpoint:
    """Resolve and read a checkpoint into host memory, never touching the accelerator (what the
    prefetch thread runs while the current model is evaluated), or raise a one-line
    EvalsuiteError naming it. Order: a local folder; the HF cache (no network); one quick question
    to the Hub; the download.

    The error carries no traceback of the failed load: its frames would keep the partly loaded
    model alive for as long as the error is held (the prefetcher hands it over as a result).
    Host memory: transformers >= 4.56 always builds the model without weights (meta device; the
    old `low_cpu_mem_usage` switch is ignored) and fills each tensor once from the memory-mapped
    file, so the host holds one copy of the next checkpoint (11.8 B parameters x 2 bytes: 24 GB for
    12B in float16), never two. `device_map` would load straight to the accelerator: not here, where the previous model
    may still be on it (see place_on_device)."""
    import torch

    # A .bin load from the Hub would start transformers' background safetensors conversion (a
    # request to a conversion service, on a thread we cannot stop); this is its switch
    # (transformers >= 4.57 reads "true"; 4.56 has none, hence the floor in pyproject.toml).
    os.environ.setdefault("DISABLE_SAFETENSORS_CONVERSION", "true")
    kwargs = dict(dtype=getattr(torch, dtype))
    if ckpt.local_dir:
        if not (ckpt.local_dir / "config.json").exists():
            raise CheckpointError(f"{ckpt.label()}: no checkpoint at {ckpt.local_dir} (no config.json)")
        model = _read(ckpt.local_dir, _folder_error(ckpt), **kwargs)
        return LoadedCheckpoint(ckpt, model, commit=None, origin="folder")
    return _from_hub(ckpt, kwargs)


def place_on_device(loaded: LoadedCheckpoint, device: str) -> LoadedCheckpoint:
    """Move a host-loaded model to `device`, in place; returns `loaded`. Call it on the main thread
    once the previous model is released (LoadedCheckpoint.release, and any lm-eval LM over it
    deleted): if anything is still allocated on the accelerator, it first collects what that model
    left (reference cycles, the CUDA cache), so two models are never on it together. A full
    garbage collection walks every object of a sweep (lm-eval's requests: ~0.3 s a checkpoint on
    a CPU), so it runs only then. A failed move releases this model too."""
    import gc

    import torch

    if device.startswith("cuda") and torch.cuda.memory_allocated(device) > 0:
        gc.collect()
        torch.cuda.empty_cache()
    try:
        loaded.model.to(device)
    except Exception as exc:
        reason = _reason(exc)
    else:
        return loaded
    loaded.release()  # outside the except: the half-moved tensors are no longer referenced
    raise EvalsuiteError(f"cannot move {loaded.checkpoint.describe()} to {device}: {reason}")


def _from_hub(ckpt: Checkpoint, kwargs: dict) -> LoadedCheckpoint:
    snapshot = cached_snapshot(ckpt)  # the local HF cache first: no network at all when it is there
    if snapshot is not None:
        model = _read(snapshot, _cache_error(ckpt, snapshot), missing_ok=True, **kwargs)
        if model is not None:
            return LoadedCheckpoint(ckpt, model, commit=snapshot.name, origin="hf-cache")
    reason = hub.unreachable(f"models/{ckpt.repo_id}/revision/{ckpt.revision}")
    if reason:  # a missing revision is this checkpoint's problem; an unreachable Hub, everyone's
        raise _hub_error(ckpt, reason, CheckpointError if reason == hub.MISSING else EvalsuiteError)
    model = _read(ckpt.repo_id, lambda why: _hub_error(ckpt, why), revision=ckpt.revision, **kwargs)
    snapshot = cached_snapshot(ckpt)  # where the download went: its folder names the commit
    return LoadedCheckpoint(ckpt, model, commit=snapshot.name if snapshot else None, origin="hub")


def cached_snapshot(ckpt: Checkpoint) -> Path | None:
    """The HF cache's snapshot folder for repo@revision (named by its commit hash), if cached."""
    from huggingface_hub import try_to_load_from_cache

    if ckpt.repo_id is None:
        return None
    config = try_to_load_from_cache(ckpt.repo_id, "config.json", revision=ckpt.revision)
    return Path(config).parent if isinstance(config, str) else None


def _read(source, error: Callable[[str], EvalsuiteError], missing_ok: bool = False, **kwargs):
    """from_pretrained(source) in eval mode. Any failure becomes `error(reason)`, raised after the
    except block, when the original exception and the frames holding the partly built model are
    gone. With missing_ok, files that are not there (OSError) give None instead."""
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM.from_pretrained(source, **kwargs).eval()
    except OSError as exc:
        if missing_ok:
            return None
        reason = _reason(exc)
    except Exception as exc:  # a truncated file, a tensor of the wrong shape, memory, ...
        reason = _reason(exc)
    raise error(reason)


def _folder_error(ckpt: Checkpoint) -> Callable[[str], EvalsuiteError]:
    return lambda reason: CheckpointError(
        f"{ckpt.label()}: cannot load {ckpt.local_dir}: {reason}")


def _cache_error(ckpt: Checkpoint, snapshot: Path) -> Callable[[str], EvalsuiteError]:
    return lambda reason: CheckpointError(
        f"cannot load {ckpt.repo_id} revision {ckpt.revision} from the HF cache ({snapshot}): {reason}; "
        f"delete it (huggingface-cli delete-cache) to download it again")


def _hub_error(ckpt: Checkpoint, reason: str, kind: type[EvalsuiteError] = CheckpointError) -> EvalsuiteError:
    return kind(
        f"cannot load {ckpt.repo_id} revision {ckpt.revision}: {reason}. To use local files, "
        "pass --model-path DIR (DIR/step<N>/, DIR/checkpoint-<N>/, or those under DIR/<model>/) or put the "
        "revision in the HF cache (huggingface-cli download --revision) where the Hub is reachable")


def _reason(exc: Exception) -> str:
    """The exception's first line, and its type where the text alone may not say what happened."""
    text = first_line(exc)
    kind = "" if isinstance(exc, (OSError, EvalsuiteError)) else f"{type(exc).__name__}: "
    return (kind + text)[:200] or type(exc).__name__


def parameter_count(model) -> int:
    """A loaded model's parameters (a tensor shared by two modules, as tied embeddings, counted once)."""
    return sum(p.numel() for p in model.parameters())


def environment(device: str) -> dict:
    """Versions and hardware for a run's provenance."""
    import lm_eval
    import torch
    import transformers

    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else None
    return dict(lm_eval_version=lm_eval.__version__, transformers_version=transformers.__version__,
                torch_version=str(torch.__version__), gpu_name=gpu, hostname=platform.node())


def gpu_memory_gib() -> float | None:
    """The memory of this process's first CUDA device in GiB; None without one."""
    import torch

    return torch.cuda.get_device_properties(0).total_memory / 2**30 if torch.cuda.is_available() else None


def share_device(device: str, threads: int, memory_share: float) -> None:
    """This process's torch threads and, on CUDA, its share of the GPU's memory: workers that share
    a GPU each keep to theirs, so one cannot take a neighbour's."""
    import torch

    torch.set_num_threads(threads)
    if device.startswith("cuda") and 0 < memory_share < 1:
        torch.cuda.set_per_process_memory_fraction(memory_share)
