"""The catalog: the built-in entries (catalog/builtin.yaml, inside the package) and the user's
models.yaml (beside tasks.yaml, or --models-file), read into one Catalog of ModelSpecs.

Both files have one format, checked here once: a top-level `models:` mapping of name -> facts
(`family`, `params`, `tokens_per_step`, `repo`, `revisions`, `checkpoints`, `main`, `path`,
`card`, `tokenizer`), and an optional `shared:` mapping that only holds YAML anchors entries can merge
(`<<: *pythia`). `{name}` in repo, card or path is the entry's name; a name ending in `{1..9}`
is one entry per number. A bad file is one line naming the file, the entry and the problem.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import yaml

from evalsuite import names
from evalsuite.catalog import pythia
from evalsuite.catalog.models import SHIPPED_TOKENIZER, ModelSpec, RevisionPattern, is_repo_id, name_from_repo
from evalsuite.errors import EvalsuiteError, first_line
from evalsuite.paths import MODELS_YAML

BUILTIN = Path(__file__).with_name("builtin.yaml")
FIELDS = {"family", "params", "tokens_per_step", "repo", "revisions", "checkpoints", "main", "path", "card",
          "tokenizer"}
RANGE = re.compile(r"\{(\d{1,3})\.\.(\d{1,3})\}$")  # pythia-160m-seed{1..9}


@dataclass(frozen=True)
class Catalog:
    """Every model evalsuite can name, by name; repositories looked up without regard to case."""

    specs: dict[str, ModelSpec]

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self.specs.values())

    def __contains__(self, name: object) -> bool:
        return name in self.specs

    def get(self, name: str) -> ModelSpec | None:
        return self.specs.get(name)

    def by_repo(self, repo: str) -> ModelSpec | None:
        """The entry whose Hub repository is `repo`, ignoring case as the Hub does."""
        wanted = repo.lower()
        return next((spec for spec in self if spec.repo and spec.repo.lower() == wanted), None)

    def family(self, *families: str) -> list[ModelSpec]:
        return [spec for spec in self if spec.family in families]

    def for_repo(self, repo: str) -> ModelSpec:
        """The entry of a Hub repository, or a new description of it: named by name_from_repo,
        family 'other', checkpoints found in its refs by the known revision patterns."""
        known = self.by_repo(repo)
        if known:
            return known
        name = name_from_repo(repo)
        if name in self.specs:
            other = self.specs[name].repo or "a local model"
            raise EvalsuiteError(f"{repo} would be named {name!r}, which is another model's name ({other}); "
                                 "add it to models.yaml under another name")
        return ModelSpec(name=names.check("model", name), repo=repo)


def load_catalog(path: Path | str | None = None) -> Catalog:
    """The built-in entries and the user's (default: models.yaml beside tasks.yaml, if present)."""
    specs = dict(_builtin().specs)
    user = Path(path) if path is not None else MODELS_YAML
    if path is not None or user.is_file():
        for spec in read_entries(user).values():
            if spec.name in specs:
                raise EvalsuiteError(f"{user}: model {spec.name!r} is built in; give your entry another name")
            specs[spec.name] = spec
    return Catalog(specs)


@lru_cache(maxsize=1)
def _builtin() -> Catalog:
    return Catalog(read_entries(BUILTIN))


def builtin_catalog() -> Catalog:
    """The entries that ship inside the package (what a dashboard started from a wheel knows)."""
    return _builtin()


def read_entries(path: Path) -> dict[str, ModelSpec]:
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise EvalsuiteError(f"{path}: models file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalsuiteError(f"{path}: cannot read it ({first_line(exc)})") from None
    except yaml.YAMLError as exc:
        raise EvalsuiteError(f"{path}: not valid YAML ({first_line(exc)})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict) or set(raw) - {"models", "shared"}:
        raise EvalsuiteError(f"{path}: expected a mapping with 'models:' (and optionally 'shared:')")
    entries = raw.get("models") or {}
    if not isinstance(entries, dict):
        raise EvalsuiteError(f"{path}: 'models:' must map model names to their facts")
    specs: dict[str, ModelSpec] = {}
    for key, body in entries.items():
        for name in _expand(path, key):
            if name in specs:
                raise EvalsuiteError(f"{path}: model {name!r} is listed twice")
            specs[name] = _entry(path, name, body)
    return specs


def _expand(path: Path, key: object) -> list[str]:
    text = str(key)
    found = RANGE.search(text)
    if found:
        low, high = int(found[1]), int(found[2])
        if low > high:
            raise EvalsuiteError(f"{path}: model {text!r}: the range {{{low}..{high}}} is empty")
        text_names = [text[:found.start()] + str(n) for n in range(low, high + 1)]
    else:
        text_names = [text]
    for name in text_names:
        if not names.is_valid(name):
            raise EvalsuiteError(f"{path}: bad model name {names.shown(name)}: {names.RULE}")
    return text_names


def _entry(path: Path, name: str, body: object) -> ModelSpec:
    where = f"{path}: model {name!r}"
    if not isinstance(body, dict):
        raise EvalsuiteError(f"{where}: expected a mapping of facts ({', '.join(sorted(FIELDS))})")
    unknown = sorted(set(map(str, body)) - FIELDS)
    if unknown:
        raise EvalsuiteError(f"{where}: unknown field {unknown[0]!r}; valid: {', '.join(sorted(FIELDS))}")
    text = {k: str(v).replace("{name}", name) for k, v in body.items()
            if k in ("repo", "card", "path", "tokenizer") and v is not None}
    spec = ModelSpec(name=name, family=_family(where, body.get("family", "other")),
                     params=_count(where, body, "params"), tokens_per_step=_count(where, body, "tokens_per_step"),
                     repo=_repo(where, text.get("repo")), revisions=_pattern(where, body.get("revisions")),
                     main=_count(where, body, "main", low=0), card=text.get("card"),
                     path=(path.parent / text["path"]).resolve() if "path" in text else None,
                     tokenizer=_tokenizer(path, text.get("tokenizer")))
    spec = _checkpoints(where, spec, body.get("checkpoints"))
    if spec.revisions and not spec.repo:
        raise EvalsuiteError(f"{where}: 'revisions' names the Hub revisions of a 'repo', and it has none")
    if not spec.repo and not spec.path:
        raise EvalsuiteError(f"{where}: say where its checkpoints are: a Hub 'repo' or a local 'path'")
    if spec.main is not None and spec.steps and spec.main not in spec.steps:
        raise EvalsuiteError(f"{where}: main {spec.main} is not one of its checkpoints")
    return spec


def _family(where: str, value: object) -> str:
    if not names.is_valid(value):
        raise EvalsuiteError(f"{where}: bad family {names.shown(value)}: {names.RULE}")
    return str(value)


def _count(where: str, body: dict, key: str, low: int = 1) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise EvalsuiteError(f"{where}: {key} {names.shown(value)} is not a whole number >= {low}")
    return value


def _repo(where: str, value: str | None) -> str | None:
    if value is not None and not is_repo_id(value):
        raise EvalsuiteError(f"{where}: repo {names.shown(value)} is not a Hub repository id (ORG/NAME)")
    return value


def _tokenizer(path: Path, value: str | None) -> str | None:
    """gpt-neox-20b (the shipped copy), a Hub repository id, or a folder (relative to the file)."""
    if value is None or value == SHIPPED_TOKENIZER or is_repo_id(value):
        return value
    return str((path.parent / value).resolve())


def _pattern(where: str, value: object) -> str | None:
    if value is None:
        return None
    try:
        return RevisionPattern(str(value)).text
    except ValueError as exc:
        raise EvalsuiteError(f"{where}: {exc}") from None


def _checkpoints(where: str, spec: ModelSpec, value: object) -> ModelSpec:
    """`checkpoints: pythia` (Pythia's 154), a list of steps, or absent (found when run)."""
    if value is None:
        return spec
    if value == pythia.GRID:
        return replace(spec, steps=tuple(pythia.ALL_STEPS), grid=pythia.GRID)
    if (not isinstance(value, list) or not value
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value)):
        raise EvalsuiteError(f"{where}: checkpoints must be '{pythia.GRID}' or a list of steps (whole numbers >= 0)")
    if not spec.revisions or spec.pattern is None or spec.pattern.name_for(0) is None:
        raise EvalsuiteError(f"{where}: a checkpoint list needs 'revisions' that name a step alone (e.g. step{{step}})")
    return replace(spec, steps=tuple(sorted(set(value))))

