"""Which checkpoint an lm-eval result file holds, and its provenance, from the file's content.

Model and step come from `config.model_args` (`pretrained=`, `revision=stepN`), never from the
file's name; `--model` / `--step` fill in what a file does not say and must agree with what it
does. A file becomes one Run whose id hashes its bytes and the source, so importing it again
changes nothing.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from evalsuite import names
from evalsuite.catalog.baselines import single_checkpoint
from evalsuite.catalog.pythia import FINAL_STEP, MODELS
from evalsuite.io.files import SkipFile
from evalsuite.records import Run


@dataclass(frozen=True)
class Identity:
    model: str
    step: int | None
    model_source: str | None


def _model_args(config: dict) -> dict:
    """`config.model_args` as a dict: 0.3 and 0.4 write `k=v,k=v`; 0.4 may write a mapping."""
    args = config.get("model_args")
    if isinstance(args, dict):
        return {str(k): str(v) for k, v in args.items()}
    if not isinstance(args, str):
        return {}
    found = {}
    for key, value in (part.split("=", 1) for part in args.split(",") if "=" in part):
        if key in found:  # `revision=step1000,revision=step2000`: which one was loaded?
            raise SkipFile(f"config.model_args names {names.shown(key)} more than once")
        found[key] = value
    return found


def model_name(pretrained: str) -> tuple[str, int | None]:
    """`EleutherAI/pythia-v1.1-1b-bf16` -> pythia-1b; `facebook/opt-1.3b` -> opt-1.3b; a local
    checkpoint folder `.../pythia-70m/step1000` -> (pythia-70m, 1000)."""
    parts = [p for p in re.split(r"[/\\]", pretrained.strip()) if p]
    step = None
    if len(parts) > 1 and re.fullmatch(r"step\d{1,10}", parts[-1]):
        step, parts = int(parts[-1][4:]), parts[:-1]
    name = re.sub(r"^pythia-v\d+(\.\d+)?-", "pythia-", parts[-1] if parts else "")
    unsuffixed = re.sub(r"-(bf16|fp16)$", "", name)  # published as pythia-1b-bf16: same model
    return (unsuffixed if unsuffixed in MODELS else name), step


def _step(revision: str, model: str) -> int:
    if re.fullmatch(r"step\d{1,10}", revision):
        return int(revision[4:])
    if revision == "main" and model in MODELS:
        return FINAL_STEP  # Pythia's `main` branch is its last checkpoint
    raise SkipFile(f"revision {names.shown(revision)} is not a checkpoint step (stepN); pass --step")


def identify(raw: dict, model: str | None = None, step: int | None = None) -> Identity:
    """Model and step from the file's model_args; --model/--step fill in what it does not say."""
    args = _model_args(raw.get("config") or {})
    pretrained = args.get("pretrained")
    found_model, found_step = model_name(pretrained) if pretrained else (None, None)
    revision = args.get("revision")
    if revision is None and found_model in MODELS and str(pretrained).startswith("EleutherAI/"):
        revision = "main"  # lm-eval loaded the Hub's default branch: Pythia's final checkpoint
    if revision is not None:
        found_step = _step(revision, found_model or model or "")
    for what, given, found in (("model", model, found_model), ("step", step, found_step)):
        if given is not None and found is not None and given != found:
            raise SkipFile(f"the file says {what} {found}, not --{what} {given}")
    model, step = model or found_model, step if step is not None else found_step
    if not model:
        raise SkipFile("the file does not say which model it evaluated (no pretrained= in "
                       "config.model_args); pass --model NAME (and --step N)")
    if not names.is_valid(model):
        raise SkipFile(f"the file names model {names.shown(found_model)}, not a usable name "
                       f"({names.RULE}); pass --model NAME")
    if step is None and not single_checkpoint(model):
        raise SkipFile(f"the file does not say which step of {model} it evaluated (no "
                       "revision=stepN in config.model_args); pass --step N")
    return Identity(model, step, f"{pretrained}@{revision}" if pretrained and revision else pretrained)


def _is_v03(raw: dict) -> bool:
    return "n-shot" not in raw and not any(
        "," in key for values in raw["results"].values() if isinstance(values, dict) for key in values)


def _dtype(raw: dict) -> str | None:
    config = raw.get("config") or {}
    dtype = _model_args(config).get("dtype") or config.get("model_dtype")
    return str(dtype).removeprefix("torch.") if dtype else None


def _optional(value, kind):
    try:
        return None if value in (None, "") else kind(value)
    except (TypeError, ValueError):
        return None


def _doc_limit(config: dict) -> int | None:
    from evalsuite.lmeval.results import whole_number

    limit = config.get("limit")
    if isinstance(limit, float) and 0 < limit < 1:
        raise SkipFile(f"config.limit {limit} is a fraction of each task's documents; evalsuite "
                       "stores limits as document counts")
    try:
        return whole_number(limit, "config.limit")
    except ValueError as exc:
        raise SkipFile(str(exc)) from None


def make_run(raw: dict, ident: Identity, run_id: str, source: str) -> Run:
    config = raw.get("config") or {}
    version = raw.get("lm_eval_version") or ("0.3" if _is_v03(raw) else None)
    return Run(
        run_id=run_id, source=source, model=ident.model, step=ident.step,
        backend=_optional(config.get("model"), str), model_source=ident.model_source,
        doc_limit=_doc_limit(config), dtype=_dtype(raw),
        batch_size=_optional(config.get("batch_size"), str), device=_optional(config.get("device"), str),
        lm_eval_version=str(version) if version else None,
        transformers_version=_optional(raw.get("transformers_version"), str),
        duration_s=_optional(raw.get("total_evaluation_time_seconds"), float),
    )


def run_id_for(data: bytes, source: str) -> str:
    return "import-" + hashlib.sha256(source.encode() + b"\0" + data).hexdigest()[:16]
