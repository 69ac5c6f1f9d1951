"""Where a model's checkpoints are, when its entry does not list them: the folders a training run
wrote, or a Hub repository's revisions (its branches on the Hub; offline, the refs in the local
Hugging Face cache).

A folder holds `stepN/` (saved by hand) or `checkpoint-N/` (the Hugging Face Trainer), directly or
under `<model>/`; a folder that is itself one checkpoint (a config.json in it) is a released
model. A repository's revisions are read by the entry's revision pattern, or, for a repository
no entry describes, by the patterns of known suites; one without step revisions is a released
model, loaded from `main`. Nothing here loads a model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from evalsuite.catalog.models import KNOWN_PATTERNS, MAIN, Checkpoint, ModelSpec, Revision, RevisionPattern
from evalsuite.errors import EvalsuiteError, first_line

STEP_FOLDER = re.compile(r"(?:step|checkpoint-)(\d{1,10})")  # stepN/ (by hand), checkpoint-N/ (HF Trainer)


@dataclass(frozen=True)
class Found:
    """A model's checkpoints by step (None: a released model's one checkpoint), and its description
    with what finding them taught (the revision pattern an unknown repository uses)."""

    spec: ModelSpec
    checkpoints: dict[int | None, Checkpoint]


def find_checkpoints(spec: ModelSpec, model_path: Path | None = None, described: bool = True) -> Found:
    """Every checkpoint of `spec`: in `model_path` (--model-path) or the entry's folder, its fixed
    list, or its repository's revisions. `described`: the catalog describes this repository (so
    no revision pattern means a released model); otherwise its revisions are read by the known
    patterns. A model with none anywhere is an EvalsuiteError saying where it looked."""
    folder = model_path or spec.path
    if folder is not None:
        return Found(spec, {step: Checkpoint(spec.name, step, local_dir=path, tokens=spec.tokens_at(step))
                            for step, path in folder_checkpoints(folder, spec.name).items()})
    if spec.repo is None:
        raise EvalsuiteError(f"{spec.name}: its entry names no Hub repository and no folder; pass --model-path DIR")
    if spec.steps is not None:
        return Found(spec, {step: spec.hub_checkpoint(step) for step in spec.steps})
    if spec.released and described:
        return Found(spec, {None: released(spec, spec.repo)})
    return _from_refs(spec, repo_refs(spec.repo))


def released(spec: ModelSpec, repo: str) -> Checkpoint:
    return Checkpoint(spec.name, None, repo_id=repo, revision=MAIN)


def folder_checkpoints(root: Path, model: str) -> dict[int | None, Path]:
    """{step: folder} under `root` (`<model>/stepN`, `<model>/checkpoint-N`, `stepN`, `checkpoint-N`),
    or {None: folder} for a folder that is one checkpoint; an EvalsuiteError naming what was
    looked for when there is none."""
    if not root.is_dir():
        raise EvalsuiteError(f"--model-path {root} is not a directory")
    for base in (root / model, root):
        found = _step_folders(base)
        if found:
            return dict(sorted(found.items()))
    for base in (root / model, root):
        if (base / "config.json").is_file():
            return {None: base}
    raise EvalsuiteError(f"no checkpoints of {model} in {root}: looked for {model}/stepN/, {model}/checkpoint-N/, "
                         "stepN/ and checkpoint-N/ folders there, and for a config.json in it")


def _step_folders(base: Path) -> dict[int | None, Path]:
    found: dict[int | None, Path] = {}
    if not base.is_dir():
        return found
    for path in sorted(base.iterdir()):
        match = STEP_FOLDER.fullmatch(path.name)
        if not match or not path.is_dir():
            continue
        step = int(match[1])
        if step in found:
            raise EvalsuiteError(f"{found[step]} and {path} are both step {step}: move one away")
        found[step] = path
    return found


@dataclass(frozen=True)
class Refs:
    """A repository's revision names, the repository id as found (the cache keeps its spelling),
    and where they were read."""

    repo: str
    names: list[str]
    where: str


def _from_refs(spec: ModelSpec, refs: Refs) -> Found:
    patterns = (spec.revisions,) if spec.revisions else KNOWN_PATTERNS
    parsed = {text: [r for r in map(RevisionPattern(text).parse, refs.names) if r] for text in patterns}
    best = max(patterns, key=lambda text: len(parsed[text]))
    revisions: list[Revision] = sorted(parsed[best], key=lambda r: (r.step, r.name))
    if not revisions:
        if spec.revisions:
            raise EvalsuiteError(f"{spec.name}: no revision of {refs.repo} ({refs.where}) is named like "
                                 f"{RevisionPattern(spec.revisions).shown()}")
        if MAIN not in refs.names:
            raise EvalsuiteError(f"{spec.name}: {refs.repo} has neither step revisions nor {MAIN} ({refs.where})")
        return Found(spec, {None: released(spec, refs.repo)})
    spec = replace(spec, revisions=best)
    by_step: dict[int | None, Checkpoint] = {}
    for revision in revisions:  # two names of one step (a re-upload): the first by name is kept
        if revision.step not in by_step:
            by_step[revision.step] = Checkpoint(spec.name, revision.step, repo_id=refs.repo, revision=revision.name,
                                                tokens=spec.tokens_at(revision.step, revision.tokens))
    return Found(spec, by_step)


def repo_refs(repo: str) -> Refs:
    """The repository's branches from the Hub; where the Hub cannot be asked, the revisions in the
    local HF cache; an EvalsuiteError when neither has any."""
    reason = _hub_unreachable(repo)
    if reason is None:
        try:
            from huggingface_hub import list_repo_refs

            return Refs(repo, [branch.name for branch in list_repo_refs(repo).branches], "the Hub's branches")
        except Exception as exc:  # noqa: BLE001 - whatever the Hub client raised, said in one line
            reason = first_line(exc)[:200] or type(exc).__name__
    cached = cached_refs(repo)
    if cached is not None and cached.names:
        return cached
    raise EvalsuiteError(f"cannot list the checkpoints of {repo}: {reason}, and the HF cache holds no "
                         "revision of it. Pass --model-path DIR for local checkpoints")


def _hub_unreachable(repo: str) -> str | None:
    from evalsuite.lmeval import hub  # one quick question, no retries (imports nothing heavy)

    return hub.unreachable(f"models/{repo}")


def cached_refs(repo: str) -> Refs | None:
    """The revisions of `repo` the HF cache holds (its refs/ folder), the repository's name
    matched without regard to case; None when it holds none."""
    from huggingface_hub import constants

    cache = Path(constants.HF_HUB_CACHE)
    wanted = "models--" + repo.replace("/", "--").lower()
    folders = [p for p in cache.iterdir() if p.name.lower() == wanted] if cache.is_dir() else []
    for folder in sorted(folders):
        refs = folder / "refs"
        names = sorted(p.name for p in refs.iterdir() if p.is_file()) if refs.is_dir() else []
        if names:
            return Refs(folder.name.removeprefix("models--").replace("--", "/", 1), names, f"the HF cache at {cache}")
    return None
