"""Which checkpoint an lm-eval result file holds, and its provenance, from the file's content.

Model and step come from `config.model_args` (`pretrained=`, `revision=`), never from the file's
name, and are read through the catalog: a Hub repository id names the catalog's model whatever
its case (or, for a repository no entry describes, its name part lower-cased); a local path by
its folder (a checkpoint folder as trainers name them, `checkpoint-N`, `global_stepN`, `iter_N`,
...: the folder above it, and its step); a Hugging Face cache snapshot's path is its repository
at that commit (a commit of a released model is its one checkpoint); a revision is
read by the model's revision pattern (`stepN`, OLMo's `stepN-tokensNB`, ...); `main`, or no
revision, is the step the entry says `main` holds, and otherwise the model's one released
checkpoint, step None (never an invented step); a gpt-neox file's `iteration` (at the top, or
in its NeoX arguments) is its step; a model with an adapter applied (`peft=`, `delta=`,
`lora_local_path=`) is not `pretrained=`'s and needs --model. A file `evalsuite export` wrote
names its model, step, tokens and source in its `evalsuite` block, which is read first. Tokens
seen come from the model's description. `--model` renames what the file calls the model (the
file's own name stays in the run's model_source); `--step` is for files
that name no step, and never overrides or fails one that does. A file becomes one Run per shot
count whose id hashes its bytes and the source, so importing it again changes nothing.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from evalsuite import names
from evalsuite.catalog.entries import Catalog, builtin_catalog
from evalsuite.catalog.models import KNOWN_PATTERNS, MAIN, ModelSpec, RevisionPattern, is_repo_id, parse_revision
from evalsuite.catalog.steps import describe
from evalsuite.errors import EvalsuiteError
from evalsuite.io.files import SkipFile
from evalsuite.records import Model, Run

# A local checkpoint folder's name, as trainers save them: stepN or step_N (by hand), checkpoint-N
# (Hugging Face Trainer), global_stepN (DeepSpeed), iter_0001000 (Megatron). Wider than the folders
# evalsuite loads (catalog/discover.py): a file may name a folder converted since.
STEP_FOLDER = re.compile(r"(?:global_step|step_?|checkpoint[-_]|iter_)(\d{1,10})")
COMMIT = re.compile(r"[0-9a-f]{40}")  # a git commit, as a revision
# lm-eval's model_args that change the weights `pretrained=` loads: hf's PEFT adapter and delta
# weights, vllm's LoRA adapter
ADAPTERS = ("peft", "delta", "lora_local_path")


@dataclass(frozen=True)
class Identity:
    model: str
    step: int | None  # None: the model's one released checkpoint
    model_source: str | None
    tokens: int | None = None  # tokens seen at this checkpoint, where known
    about: Model | None = None  # what the store keeps about the model
    notes: tuple[str, ...] = ()  # lines for the report: where a name came from, a --step not used
    source: str | None = None  # the source an `evalsuite export` block names


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


def model_name(pretrained: str, catalog: Catalog | None = None) -> tuple[str, int | None]:
    """`EleutherAI/pythia-v1.1-1b-bf16` -> pythia-1b; `facebook/opt-1.3b` -> opt-1.3b; a local
    checkpoint folder `.../pythia-70m/step1000` -> (pythia-70m, 1000)."""
    spec, step = _model_of(_cached(pretrained, None)[0] or pretrained, catalog or builtin_catalog())
    return spec.name, step


def _model_of(pretrained: str, catalog: Catalog) -> tuple[ModelSpec, int | None]:
    """The model `pretrained=` names (the catalog's entry, or a new description), and the step of
    a local checkpoint folder (`.../stepN`, `.../checkpoint-N`)."""
    text = pretrained.strip()
    if _is_hub(text):
        known = catalog.by_repo(text) or _same_org(text, catalog.get(_renamed(text.split("/")[-1], catalog)))
        return (known, None) if known else (_describe(text, catalog), None)
    parts = [p for p in re.split(r"[/\\]", text) if p]
    folder = STEP_FOLDER.fullmatch(parts[-1]) if len(parts) > 1 else None
    if folder:
        parts = parts[:-1]
    name = _renamed(parts[-1] if parts else "", catalog)
    return catalog.get(name) or ModelSpec(name), int(folder[1]) if folder else None


def _is_hub(pretrained: str) -> bool:
    """`ORG/NAME` (not a local `.../stepN` folder): lm-eval loaded it from the Hub."""
    return is_repo_id(pretrained) and not STEP_FOLDER.fullmatch(pretrained.split("/")[-1])


def _same_org(repo: str, spec: ModelSpec | None) -> ModelSpec | None:
    """An entry found by name stands for `repo` only when it comes from the same organisation
    (EleutherAI/pythia-v1.1-1b-bf16 is EleutherAI's pythia-1b; someone/pythia-70m is not)."""
    same = spec is not None and spec.repo is not None and spec.repo.split("/")[0].lower() == repo.split("/")[0].lower()
    return spec if same else None


def _renamed(name: str, catalog: Catalog) -> str:
    """Pythia's published file names: `pythia-v1.1-1b-bf16` is the suite's pythia-1b."""
    name = re.sub(r"^pythia-v\d+(\.\d+)?-", "pythia-", name)
    unsuffixed = re.sub(r"-(bf16|fp16)$", "", name)
    return unsuffixed if unsuffixed in catalog else name


def _describe(repo: str, catalog: Catalog) -> ModelSpec:
    """A repository no entry describes: named by its name part, lower-cased."""
    try:
        return catalog.for_repo(repo)
    except names.BadName:
        return ModelSpec(repo.split("/")[-1])  # refused below with the name it has
    except EvalsuiteError as exc:  # its name is another model's
        raise SkipFile(f"{exc}; or pass --model NAME") from None


def _step(revision: str, spec: ModelSpec) -> tuple[int | None, int | None]:
    """(step, tokens in the name) of a revision of `spec`'s repository."""
    if revision == MAIN or (COMMIT.fullmatch(revision) and not spec.revisions):  # a commit of a released model
        if spec.main is None and spec.revisions:
            raise SkipFile(f"revision {MAIN} of {spec.name}: its description does not say which step "
                           f"{MAIN} holds; pass --step")
        return spec.main, None  # None: the released model's one checkpoint
    patterns = (spec.revisions,) if spec.revisions else KNOWN_PATTERNS
    found = parse_revision(revision, patterns)
    if found is None:
        shown = " or ".join(RevisionPattern(p).shown() for p in patterns[:2])
        raise SkipFile(f"revision {names.shown(revision)} is not a checkpoint step ({shown}); pass --step")
    return found.step, found.tokens


def identify(raw: dict, model: str | None = None, step: int | None = None,
             catalog: Catalog | None = None) -> Identity:
    """Model and step from what the file says (its `evalsuite` block where evalsuite wrote it, else
    config.model_args, else a gpt-neox file's `iteration`); `model` renames what the file calls
    the model (the file's name stays in model_source); `step` is for a file that names no step."""
    catalog = catalog or builtin_catalog()
    args = _model_args(raw.get("config") or {})
    pretrained, adapter = args.get("pretrained"), _adapter(args, model)
    spec, found_step, named_tokens = None, None, None
    if not adapter:  # with one, the base model's name and revision are not the model evaluated's
        loaded, named = _cached(pretrained, args.get("revision"))  # no revision: a Hub repository's main
        spec, found_step = _model_of(loaded, catalog) if loaded else (None, None)
        found_step, named_tokens = _revision_step(named or (MAIN if loaded and _is_hub(loaded) else None),
                                                  spec or catalog.get(model or "") or ModelSpec(model or "?"),
                                                  found_step, step)
    block = _evalsuite_block(raw)
    found_model = block.get("model") or (spec.name if spec else None)
    found_step = block["step"] if "step" in block else found_step
    notes = _notes(pretrained, spec, model, block, step, found_step)
    model = model or found_model
    step = found_step if found_step is not None else step
    if not model:
        raise SkipFile("the file does not say which model it evaluated (no pretrained= in "
                       "config.model_args); pass --model NAME (and --step N)")
    if not names.is_valid(model):
        raise SkipFile(f"the file names model {names.shown(found_model)}, not a usable name "
                       f"({names.RULE}); pass --model NAME")
    spec = catalog.get(model) or (spec if spec and spec.name == model else ModelSpec(model))
    if step is not None and spec.steps and step not in spec.steps:
        raise SkipFile(f"{model} has no step {names.shown(step)}: its checkpoints are steps "
                       f"{describe(list(spec.steps))}")
    revision = args.get("revision")
    source = f"{pretrained}@{revision}" if pretrained and revision else pretrained  # what the file says
    source = f"{source} + {adapter}" if adapter else source
    tokens = block["tokens"] if "tokens" in block else spec.tokens_at(step, named_tokens)
    return Identity(model, step, source, tokens, spec.record(), tuple(notes), block.get("source"))


def _cached(pretrained: str | None, revision: str | None) -> tuple[str | None, str | None]:
    """(what lm-eval loaded, its revision): a Hugging Face cache snapshot's path,
    `.../models--ORG--NAME/snapshots/COMMIT`, is its repository at that commit (its folder name, a
    commit hash, would name no model). Read by splitting the path, not by a pattern over it whole:
    the file's text is not ours, and a backtracking pattern can take quadratic time."""
    parts = [p for p in re.split(r"[/\\]", pretrained.strip()) if p] if pretrained else []
    if len(parts) < 3 or parts[-2] != "snapshots" or not COMMIT.fullmatch(parts[-1]):
        return pretrained, revision
    org, _, name = parts[-3].removeprefix("models--").partition("--")
    if not parts[-3].startswith("models--") or not org or not name:
        return pretrained, revision
    return f"{org}/{name}", parts[-1]


def _adapter(args: dict, model: str | None) -> str | None:
    """`peft=PATH` (or another of ADAPTERS) where the file's model had one applied: its scores are not
    `pretrained=`'s, so the file is refused unless --model names what was evaluated."""
    adapter = next((f"{key}={args[key]}" for key in ADAPTERS if args.get(key)), None)
    if adapter and not model:
        raise SkipFile(f"the file evaluated {names.shown(args.get('pretrained') or '?')} with "
                       f"{names.shown(adapter, 120)} applied, not that model; pass --model NAME (and --step N)")
    return adapter


def _revision_step(revision: str | None, spec: ModelSpec, found: int | None,
                   given: int | None) -> tuple[int | None, int | None]:
    """(step, tokens in the name) of the revision the file names; a revision that names no step
    is no step when --step gives one (it is for such files)."""
    if revision is None:
        return found, None
    try:
        return _step(revision, spec)
    except SkipFile:
        if given is None:
            raise
        return None, None


def _evalsuite_block(raw: dict) -> dict:
    """What the file's `evalsuite` block (written by `evalsuite export`) says of its rows, checked;
    a gpt-neox file's `iteration` is its step. Keys absent where it does not say."""
    found = raw.get("evalsuite")
    block: dict = found if isinstance(found, dict) else {}
    out: dict = {}
    if names.is_valid(block.get("model")):
        out["model"] = block["model"]
    for key in ("step", "tokens"):
        value = block.get(key)
        if key in block and (value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0)):
            out[key] = value
    if names.is_valid(block.get("source")):
        out["source"] = block["source"]
    # gpt-neox's evaluate.py: `iteration` at the top (older), or among its NeoX arguments, which
    # it writes as config.model_args, a mapping
    neox = (raw.get("config") or {}).get("model_args")
    iteration = raw.get("iteration", neox.get("iteration") if isinstance(neox, dict) else None)
    if "step" not in out and isinstance(iteration, int) and not isinstance(iteration, bool) and iteration >= 0:
        out["step"] = iteration
    return out


def _notes(pretrained: str | None, spec: ModelSpec | None, model: str | None, block: dict,
           step: int | None, found_step: int | None) -> list[str]:
    """Lines for the report: a name taken from a local folder, a --step the file overrides."""
    notes = []
    if pretrained and spec and not model and "model" not in block and not _is_hub(pretrained):
        notes.append(f"model name {names.shown(spec.name)} comes from the local path {names.shown(pretrained, 120)}; "
                     f"import it again with --model NAME to store it under another name")
    if step is not None and found_step is not None and step != found_step:
        notes.append(f"the file names step {found_step}, kept (--step {step} is for files that name no step)")
    return notes


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
