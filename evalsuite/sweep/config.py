"""What `evalsuite run` was asked to do, parsed and validated once at the edge (RunConfig).

Nothing heavy is imported here: a bad --model, --steps or --tasks is a one-line error before
torch or lm-eval load. Each --model is resolved through the catalog (catalog/entries.py) and its
checkpoints found once (catalog/discover.py): a catalog name, a Hub repository `ORG/NAME`, or any
name with --model-path; the chosen checkpoints travel in the config (to Ray workers too).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from evalsuite import names, numbers, store
from evalsuite.catalog.discover import Found, find_checkpoints
from evalsuite.catalog.entries import Catalog, load_catalog
from evalsuite.catalog.models import SHIPPED_TOKENIZER, TOKENIZER_FILES, Checkpoint, ModelSpec, is_repo_id
from evalsuite.catalog.steps import parse_steps
from evalsuite.catalog.tasks import TaskSpec, load_tasks
from evalsuite.errors import EvalsuiteError
from evalsuite.lmeval import demo
from evalsuite.records import Model


@dataclass(frozen=True)
class RunConfig:
    """Everything `evalsuite run` was asked to do, validated."""

    models: list[str]
    steps: dict[str, list[int | None]]  # per model; [None]: a released model's one checkpoint
    tasks: list[TaskSpec]
    data_dir: Path | None  # None: the Hub
    db: Path
    shots: int = 0
    limit: int | None = None
    device: str | None = None
    dtype: str | None = None
    batch_size: str = "auto"
    backend: str = "fast"
    model_path: Path | None = None
    force: bool = False
    cleanup: bool = False
    checkpoints: dict[str, dict[int | None, Checkpoint]] = field(default_factory=dict)  # the chosen ones
    about: dict[str, Model] = field(default_factory=dict)  # per model: what the store keeps about it
    tokenizers: dict[str, Checkpoint] = field(default_factory=dict)  # where a model's own tokenizer is;
    # a model not here uses the shipped GPT-NeoX-20B tokenizer (Pythia's)

    @property
    def data_source(self) -> str:
        """Where the task data comes from, as runs record it: the local folder, or 'hub'."""
        return str(self.data_dir) if self.data_dir else "hub"


def config_from_args(args) -> RunConfig:
    """Parse and validate the CLI arguments before anything heavy is imported."""
    demo_run = args.model in (None, demo.DEMO_NAME)
    model_path = Path(args.model_path) if args.model_path else None
    if model_path and not model_path.is_dir():
        raise EvalsuiteError(f"--model-path {model_path} is not a directory")
    catalog = load_catalog(args.models_file)
    tokens_per_step = _tokens_per_step(args.tokens_per_step)
    found = [_with_tokens(f, tokens_per_step)
             for f in resolve_models(args.model or demo.DEMO_NAME, catalog, model_path)]
    steps = {f.spec.name: choose_steps(f, args.steps or "all") for f in found}
    suite = load_tasks(args.tasks_file) if args.tasks_file else load_tasks()
    suite = suite.with_data_dir(args.data_dir)
    task_names = [t.strip() for t in args.tasks.split(",")] if args.tasks else None
    if args.shots < 0 or (args.limit is not None and args.limit < 1):
        raise EvalsuiteError("--shots must be >= 0 and --limit >= 1")
    limit = args.limit if args.limit is not None or not demo_run else demo.DEMO_LIMIT
    chosen = {f.spec.name: {s: f.checkpoints[s] for s in steps[f.spec.name]} for f in found}
    tokenizers = _own_tokenizers(found, chosen)
    return RunConfig(
        models=list(steps), steps=steps, tasks=suite.select(task_names), data_dir=suite.data_dir,
        shots=args.shots, limit=limit, device=args.device, dtype=args.dtype,
        batch_size=str(args.batch_size), backend=args.backend, model_path=model_path,
        db=store.db_path(args.db), force=args.force, cleanup=args.cleanup,
        checkpoints=chosen, tokenizers=tokenizers,
        about={f.spec.name: f.spec.record(checkpoints=len(f.checkpoints)) for f in found})


def resolve_models(text: str, catalog: Catalog, model_path: Path | None = None) -> list[Found]:
    """`--model`: a name, `ORG/REPO`, a comma list, or `all` (every Pythia and Pythia-deduped
    model) -> each model's description and checkpoints, or a one-line error."""
    if text.strip() == "all":
        parts = [spec.name for spec in catalog.family("pythia", "pythia-deduped")]
    else:
        parts = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not parts:
        raise EvalsuiteError("--model is empty: give a model name, ORG/REPO, a comma list, or 'all'")
    found = [_resolve(part, catalog, model_path) for part in parts]
    names_seen = [f.spec.name for f in found]
    twice = next((n for n in names_seen if names_seen.count(n) > 1), None)
    if twice:
        raise EvalsuiteError(f"--model names {twice!r} twice")
    return found


def _resolve(text: str, catalog: Catalog, model_path: Path | None) -> Found:
    if text == demo.DEMO_NAME and not model_path:
        spec = ModelSpec(demo.DEMO_NAME, path=demo.DEMO_MODEL_DIR)  # built by the run, before any load
        return Found(spec, {s: Checkpoint(spec.name, s, local_dir=demo.DEMO_MODEL_DIR / f"step{s}")
                            for s in demo.DEMO_STEPS})
    if is_repo_id(text):
        spec = catalog.for_repo(text)
        return find_checkpoints(spec, model_path, described=spec.name in catalog)
    known = catalog.get(text)
    if known is not None:
        return find_checkpoints(known, model_path)
    if model_path:
        return find_checkpoints(ModelSpec(names.check("model", text), path=model_path), model_path)
    raise EvalsuiteError(
        f"unknown model {names.shown(text)}; valid: a name in models.yaml or the built-in catalog (pythia-70m "
        "... pythia-12b, -deduped, pythia-14m, pythia-31m, PolyPythia seeds such as pythia-160m-seed3, "
        "opt-*, bloom-*), a Hub repository ORG/NAME, 'all', or any name with --model-path DIR")


def _own_tokenizers(found: list[Found], chosen: dict[str, dict[int | None, Checkpoint]]) -> dict[str, Checkpoint]:
    """{model: where its tokenizer is} for the models that do not use the shipped one (a Ray
    sweep sends a folder's files to its workers: sweep/cluster_worker.py)."""
    own = {}
    for f in found:
        where = tokenizer_of(f.spec, next(iter(chosen[f.spec.name].values())))
        if where is not None:
            own[f.spec.name] = where
    return own


def tokenizer_of(spec: ModelSpec, first: Checkpoint) -> Checkpoint | None:
    """Where the model's tokenizer is: None for the shipped GPT-NeoX-20B one (Pythia's, the demo's);
    else the entry's `tokenizer` (a Hub repository or a folder), or the checkpoint's own (the first
    one evaluated: a training run's checkpoints share theirs)."""
    if spec.tokenizer == SHIPPED_TOKENIZER or spec.name == demo.DEMO_NAME:
        return None
    if spec.tokenizer:
        local = not is_repo_id(spec.tokenizer)
        return Checkpoint(spec.name, None, local_dir=Path(spec.tokenizer) if local else None,
                          repo_id=None if local else spec.tokenizer, revision=None if local else "main")
    folder = first.local_dir
    if folder is not None and not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise EvalsuiteError(f"{spec.name}: no tokenizer in {folder} ({', '.join(TOKENIZER_FILES)}): save it beside "
                             "the checkpoints (tokenizer.save_pretrained), or name it in models.yaml "
                             f"(tokenizer: {SHIPPED_TOKENIZER} for Pythia's, a Hub repository or a folder)")
    return first


def choose_steps(found: Found, text: str) -> list[int | None]:
    """`--steps` on a model's checkpoints; a released model's one checkpoint is `all` or `final`."""
    spec, available = found.spec, found.checkpoints
    if None in available:
        if text.strip() not in ("all", "final"):
            raise EvalsuiteError(f"{spec.name} is a released model with one checkpoint and no training "
                                 f"steps; --steps {text} does not apply (use all or final)")
        return [None]
    steps = [s for s in available if s is not None]
    return list(parse_steps(text, steps, spec.grid, spec.name))


def _tokens_per_step(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise EvalsuiteError(f"bad --tokens-per-step {value}: a number of tokens >= 1")
    return value


def _with_tokens(found: Found, tokens_per_step: int | None) -> Found:
    """--tokens-per-step for a model whose description does not say; one that says another is an error."""
    spec = found.spec
    if tokens_per_step is None or spec.tokens_per_step == tokens_per_step:
        return found
    if spec.tokens_per_step is not None:
        raise EvalsuiteError(f"--tokens-per-step {tokens_per_step}: {spec.name} trained on "
                             f"{spec.tokens_per_step:,} tokens a step ({spec.card or 'its entry'})")
    spec = replace(spec, tokens_per_step=tokens_per_step)
    checkpoints = {s: replace(c, tokens=spec.tokens_at(s, c.tokens)) for s, c in found.checkpoints.items()}
    most = max((c.tokens or 0 for c in checkpoints.values()), default=0)
    if most > numbers.INT64_MAX:  # the store's tokens column is a BIGINT
        raise EvalsuiteError(f"bad --tokens-per-step {tokens_per_step}: {spec.name}'s last checkpoint would have "
                             f"seen {most:,} tokens, more than the store keeps ({numbers.INT64_MAX:,})")
    return Found(spec, checkpoints)

