"""Runs lm-eval on one loaded checkpoint. The only module (besides the demo model builder and the
fast backend) that imports torch, transformers or lm_eval; everything else stays light so that
`evalsuite --help` is instant.

`load_to_host` resolves a checkpoint (local folder, HF cache, or the Hub with revision=stepN) and
reads it into host memory, or fails fast with a clear message; `place_on_device` moves it to the
accelerator once the previous model is gone (`load_checkpoint` does both); `evaluate` runs
lm-eval's own task definitions on it, with data from the Hub or from local JSON Lines files.
"""

from __future__ import annotations

import functools
import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from evalsuite import hub
from evalsuite.errors import CheckpointError, EvalsuiteError
from evalsuite.paths import TASK_DATA_DIR, TOKENIZER_DIR
from evalsuite.tasks import TaskSpec, local_data_files

SPLIT_KEYS = ("training_split", "validation_split", "test_split")


@dataclass(frozen=True)
class Checkpoint:
    """Where one (model, step) checkpoint comes from: a local folder, or a Hub repo + revision."""

    model: str
    step: int | None
    repo_id: str | None = None
    revision: str | None = None
    local_dir: Path | None = None

    def describe(self) -> str:
        return str(self.local_dir) if self.local_dir else f"{self.repo_id}@{self.revision}"


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


def load_tokenizer(folder: Path = TOKENIZER_DIR):
    """Every Pythia checkpoint uses the same GPT-NeoX-20B tokenizer: the shipped copy is it (a Ray
    worker passes the copy the driver sent it)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


@dataclass
class LoadedCheckpoint:
    """A checkpoint read into memory, and exactly what was read (for the runs table)."""

    checkpoint: Checkpoint
    model: Any  # GPTNeoXForCausalLM in eval mode: on the host until place_on_device; None once released
    commit: str | None  # the Hub commit (the HF cache's snapshot folder name); None for a local folder
    origin: str  # "folder" (--model-path, the demo), "hf-cache" (no network), or "hub" (downloaded now)

    def release(self) -> None:
        """Drop the model; the record stays. It is freed once nothing else (an lm-eval LM) holds it."""
        self.model = None


def load_checkpoint(ckpt: Checkpoint, dtype: str, device: str):
    """A GPTNeoXForCausalLM in eval mode on `device`, or an EvalsuiteError within seconds."""
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
            raise CheckpointError(f"{ckpt.model} step {ckpt.step}: no checkpoint at {ckpt.local_dir}")
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
    snapshot = _cached_snapshot(ckpt)  # the local HF cache first: no network at all when it is there
    if snapshot is not None:
        model = _read(snapshot, _cache_error(ckpt, snapshot), missing_ok=True, **kwargs)
        if model is not None:
            return LoadedCheckpoint(ckpt, model, commit=snapshot.name, origin="hf-cache")
    reason = hub.unreachable(f"models/{ckpt.repo_id}/revision/{ckpt.revision}")
    if reason:  # a missing revision is this checkpoint's problem; an unreachable Hub, everyone's
        raise _hub_error(ckpt, reason, CheckpointError if reason == hub.MISSING else EvalsuiteError)
    model = _read(ckpt.repo_id, lambda why: _hub_error(ckpt, why), revision=ckpt.revision, **kwargs)
    snapshot = _cached_snapshot(ckpt)  # where the download went: its folder names the commit
    return LoadedCheckpoint(ckpt, model, commit=snapshot.name if snapshot else None, origin="hub")


def _cached_snapshot(ckpt: Checkpoint) -> Path | None:
    """The HF cache's snapshot folder for repo@revision (named by its commit hash), if cached."""
    from huggingface_hub import try_to_load_from_cache

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
        f"{ckpt.model} step {ckpt.step}: cannot load {ckpt.local_dir}: {reason}")


def _cache_error(ckpt: Checkpoint, snapshot: Path) -> Callable[[str], EvalsuiteError]:
    return lambda reason: CheckpointError(
        f"cannot load {ckpt.repo_id} revision {ckpt.revision} from the HF cache ({snapshot}): {reason}; "
        f"delete it (huggingface-cli delete-cache) to download it again")


def _hub_error(ckpt: Checkpoint, reason: str, kind: type[EvalsuiteError] = CheckpointError) -> EvalsuiteError:
    return kind(
        f"cannot load {ckpt.repo_id} revision {ckpt.revision}: {reason}. To use local files, "
        "pass --model-path DIR (DIR/<model>/step<N>/ or DIR/step<N>/) or put the revision in the "
        "HF cache (huggingface-cli download --revision) where the Hub is reachable")


def _reason(exc: Exception) -> str:
    """The exception's first line, and its type where the text alone may not say what happened."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    kind = "" if isinstance(exc, (OSError, EvalsuiteError)) else f"{type(exc).__name__}: "
    return (kind + text)[:200] or type(exc).__name__


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
        from evalsuite.fast_backend import FastLM

        return FastLM(model=model, tokenizer=tokenizer, batch_size=batch_size)
    raise EvalsuiteError(f"unknown backend {backend!r}; valid: fast, hf")


def task_configs(specs: list[TaskSpec], data_dir: Path | None, shots: int) -> list[dict]:
    """lm-eval's own task definitions, with `dataset_path` pointed at local files if asked."""
    from lm_eval.tasks._yaml_loader import load_yaml

    configs = []
    for spec in specs:
        config = load_yaml(task_yaml(spec.lm_eval_task), resolve_func=True)
        config["task"] = spec.name
        if data_dir is not None:
            config.update(_local_data(config, spec, data_dir, shots))
        else:
            _check_hub_data(spec, config["dataset_path"])
        configs.append(config)
    return configs


def _check_hub_data(spec: TaskSpec, dataset: str) -> None:
    """Fail in seconds, not after datasets' minute of retries, when the Hub is unreachable.
    Offline mode asks nothing: datasets' own cache may hold the data set, so lm-eval tries it."""
    reason = None if hub.offline() else hub.unreachable(f"datasets/{dataset}")
    if reason:
        raise EvalsuiteError(
            f"task {spec.name!r}: cannot download {dataset}: {reason}; the project ships the "
            f"data: use --data-dir {TASK_DATA_DIR} (or tasks.yaml's data_dir)")


def task_yaml(name: str) -> Path:
    """The YAML file of lm-eval's task `name`, confirmed by loading it as lm-eval does.

    lm-eval's TaskManager finds it by parsing all of its ~14,000 task files (5-10 s); a task
    file names its task on a `task: NAME` line, so a plain-text scan finds it in well under a
    second. A task the scan cannot place (defined some other way) falls back to lm-eval's index.
    """
    from lm_eval.tasks._yaml_loader import load_yaml

    for path in _task_lines().get(name, []):
        if load_yaml(path, resolve_func=False).get("task") == name:
            return path
    from lm_eval.tasks import TaskManager

    entry = TaskManager().task_index.get(name)
    if entry is None or entry.yaml_path is None:
        raise EvalsuiteError(f"lm-eval has no task {name!r}")
    return Path(entry.yaml_path)


@functools.cache
def _task_lines() -> dict[str, list[Path]]:
    """{NAME: files with a `task: NAME` line} over lm-eval's task folder: read once per process."""
    import lm_eval.tasks

    line = re.compile(r"^task:[ \t]*['\"]?([^'\"\s#]+)['\"]?[ \t]*(?:#.*)?$", re.MULTILINE)
    found: dict[str, list[Path]] = {}
    for path in sorted(Path(lm_eval.tasks.__file__).parent.rglob("*.yaml")):
        for name in line.findall(path.read_text(errors="replace")):
            found.setdefault(name, []).append(path)
    return found


def _local_data(config: dict, spec: TaskSpec, data_dir: Path, shots: int) -> dict:
    files = local_data_files(data_dir, spec)
    overrides = {"dataset_path": "json", "dataset_name": None,
                 "dataset_kwargs": {"data_files": {s: str(f) for s, f in files.items()}}}
    for key in SPLIT_KEYS:  # splits the local copy lacks are switched off
        if config.get(key) and config[key] not in files:
            overrides[key] = None
    eval_split = config.get("test_split") or config.get("validation_split")
    if eval_split not in files:
        raise EvalsuiteError(
            f"task {spec.name!r}: missing data file {data_dir / spec.name / (str(eval_split) + '.jsonl')}")
    # lm-eval draws few-shot examples from the first of these its task config names; switching
    # a missing train split off would silently draw them from another split instead.
    fewshot_split = ((config.get("fewshot_config") or {}).get("split") or config.get("training_split")
                     or config.get("validation_split") or config.get("test_split"))
    if shots > 0 and fewshot_split not in files:
        raise EvalsuiteError(
            f"task {spec.name!r}: {shots}-shot needs the {fewshot_split!r} split, which is not in "
            f"{data_dir / spec.name}; use --data-dir hub or add {fewshot_split}.jsonl")
    return overrides


def lm_eval_requests(specs: list[TaskSpec], data_dir: Path | None, limit: int | None) -> list:
    """lm-eval's own zero-shot loglikelihood requests (Instances) for the first `limit` documents
    of each task: exactly what a backend is asked (the fast backend's tests and benchmark)."""
    from evalsuite.lmeval.requests import prepare

    configs = task_configs(specs, data_dir, 0)
    return prepare(configs, 0, limit, str(data_dir) if data_dir else "hub").instances


def evaluate(lm, configs: list[dict], shots: int, limit: int | None) -> dict:
    """lm-eval's simple_evaluate over the tasks (full configs from task_configs), with samples."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    return lm_eval.simple_evaluate(
        model=lm, tasks=configs, num_fewshot=shots, limit=limit, log_samples=True,
        # The configs are complete: an empty manager spares re-indexing every lm-eval task file.
        task_manager=TaskManager(include_defaults=False),
        bootstrap_iters=1000,  # perplexity's stderr is bootstrapped; 1000 is plenty and fast
    )


def environment(device: str) -> dict:
    """Versions and hardware for a run's provenance."""
    import lm_eval
    import torch
    import transformers

    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else None
    return dict(lm_eval_version=lm_eval.__version__, transformers_version=transformers.__version__,
                torch_version=torch.__version__, gpu_name=gpu, hostname=platform.node())
