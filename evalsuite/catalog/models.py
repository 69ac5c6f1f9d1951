"""What a model is, as data: a name and what is known about it (ModelSpec), and where one of its
checkpoints lives (Checkpoint).

A model has a family (for grouping and colour), a parameter count, the tokens one optimizer step
consumes (None: unknown, never guessed), and where its checkpoints are: a Hugging Face Hub
repository whose revision names map to steps by a pattern (`step{step}`, OLMo's
`step{step}-tokens{tokens_b}B`), or a local folder; its checkpoint list is fixed (Pythia's 154
steps) or found in the repository's refs or the folder (catalog/discover.py). A repository with
no step revisions is a released model: one checkpoint, its `main`, stored with step None.

The entries themselves are data: catalog/builtin.yaml (Pythia, the PolyPythias, the OPT and BLOOM
baselines, each fact with its source) and the user's models.yaml, both read by catalog/entries.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from evalsuite import names
from evalsuite.errors import EvalsuiteError
from evalsuite.records import Model

OTHER = "other"  # the family of a model nothing describes
MAIN = "main"  # the revision a Hub repository loads by default
PLACEHOLDERS = {"step": "step", "tokens_b": "billions of tokens"}
# Revision names of public suites with intermediate checkpoints: Pythia and the PolyPythias, OLMo,
# OLMo 2's first stage, and Hugging Face's ablation models (zero-padded steps).
KNOWN_PATTERNS = ("step{step}", "step{step}-tokens{tokens_b}B", "stage1-step{step}-tokens{tokens_b}B",
                  "step-{step}-{tokens_b}BT")
MAX_DIGITS = 10  # a step or token count in a revision name (DuckDB's INTEGER holds 2**31 - 1)
SHIPPED_TOKENIZER = "gpt-neox-20b"  # Pythia's tokenizer, shipped in data/tokenizer (no download)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


@dataclass(frozen=True)
class Revision:
    """One revision name read as a checkpoint: its step, and the tokens seen where the name says."""

    name: str
    step: int
    tokens: int | None


@dataclass(frozen=True)
class RevisionPattern:
    """How a repository's revision names hold a step: `step{step}`, `step{step}-tokens{tokens_b}B`."""

    text: str

    def __post_init__(self) -> None:
        fields = re.findall(r"\{([^}]*)\}", self.text)
        if "step" not in fields or not set(fields) <= set(PLACEHOLDERS) or len(fields) != len(set(fields)):
            raise ValueError(f"revision pattern {self.text!r} needs {{step}} once, and only "
                             f"{', '.join('{' + p + '}' for p in PLACEHOLDERS)}")

    def _regex(self) -> re.Pattern:
        parts = re.split(r"(\{[^}]*\})", self.text)
        return re.compile("".join(f"(?P<{p[1:-1]}>\\d{{1,{MAX_DIGITS}}})" if p.startswith("{") else re.escape(p)
                                  for p in parts))

    def parse(self, name: str) -> Revision | None:
        """The checkpoint a revision name holds, or None when it is not one of this pattern's."""
        found = self._regex().fullmatch(name)
        if not found:
            return None
        billions = found.groupdict().get("tokens_b")
        return Revision(name, int(found["step"]), int(billions) * 10**9 if billions is not None else None)

    def name_for(self, step: int) -> str | None:
        """The revision holding `step`, where the name can be written from the step alone."""
        return self.text.replace("{step}", str(step)) if self.text.count("{") == 1 else None

    def shown(self) -> str:
        """`stepN`, `stepN-tokensNB`: for messages."""
        return re.sub(r"\{[^}]*\}", "N", self.text)


def parse_revision(name: str, patterns: tuple[str, ...] = KNOWN_PATTERNS) -> Revision | None:
    """The checkpoint a revision name holds by the first of `patterns` that reads it, or None."""
    for text in patterns:
        found = RevisionPattern(text).parse(name)
        if found:
            return found
    return None


@dataclass(frozen=True)
class ModelSpec:
    """Everything evalsuite knows about one model; None where a fact is unknown."""

    name: str
    family: str = OTHER
    params: int | None = None  # total parameters
    tokens_per_step: int | None = None  # tokens one optimizer step consumes
    repo: str | None = None  # Hugging Face Hub repository, e.g. 'EleutherAI/pythia-70m'
    revisions: str | None = None  # how a revision names a step (a RevisionPattern); None: main only
    steps: tuple[int, ...] | None = field(default=None, repr=False)  # fixed; None: found in the refs or folder
    grid: str | None = None  # 'pythia': the checkpoint schedule whose --steps words (published, log) apply
    main: int | None = None  # the step the `main` revision holds (Pythia: 143000)
    path: Path | None = None  # a local folder of checkpoints (DIR/stepN/, DIR/checkpoint-N/)
    card: str | None = None  # where the facts come from (a model card's URL)
    tokenizer: str | None = None  # SHIPPED_TOKENIZER, a Hub repo or a folder; None: each checkpoint's own

    @property
    def pattern(self) -> RevisionPattern | None:
        return RevisionPattern(self.revisions) if self.revisions else None

    @property
    def released(self) -> bool:
        """One checkpoint, no training steps: a Hub repository without step revisions (OPT, BLOOM)."""
        return self.repo is not None and self.revisions is None and self.path is None

    def tokens_at(self, step: int | None, named: int | None = None) -> int | None:
        """Tokens seen at `step`: step x tokens per step where that is known, else what the
        revision's name says (`named`), else None. Never guessed."""
        if step is None:
            return None
        return step * self.tokens_per_step if self.tokens_per_step is not None else named

    def hub_checkpoint(self, step: int) -> Checkpoint:
        """The checkpoint at `step` of a fixed list: its revision written from the pattern."""
        name = self.pattern.name_for(step) if self.pattern else None
        if self.repo is None or name is None:
            raise EvalsuiteError(f"{self.name}: no Hub revision is known for step {step}")
        return Checkpoint(self.name, step, repo_id=self.repo, revision=name, tokens=self.tokens_at(step))

    def record(self, params: int | None = None, checkpoints: int | None = None) -> Model:
        """What a store keeps about this model (records.Model); `params` where this spec has none."""
        return Model(model=self.name, family=self.family, params=self.params or params,
                     tokens_per_step=self.tokens_per_step, repo=self.repo, main=self.main,
                     checkpoints=len(self.steps) if self.steps else checkpoints, card=self.card)


@dataclass(frozen=True)
class Checkpoint:
    """Where one (model, step) checkpoint comes from: a local folder, or a Hub repo + revision;
    step None is a released model's one checkpoint. `tokens`: tokens seen there, where known."""

    model: str
    step: int | None
    repo_id: str | None = None
    revision: str | None = None
    local_dir: Path | None = None
    tokens: int | None = None

    def describe(self) -> str:
        return str(self.local_dir) if self.local_dir else f"{self.repo_id}@{self.revision}"

    def label(self) -> str:
        """`pythia-70m step 1000`, or `opt-125m (released)` for a model with no steps."""
        return f"{self.model} step {self.step}" if self.step is not None else f"{self.model} (released)"


def name_from_repo(repo: str) -> str:
    """The model name of a Hub repository id: its name part, lower-cased (the Hub ignores case, so
    `Qwen/Qwen2.5-1.5B` and `qwen/qwen2.5-1.5B` are one model)."""
    return repo.split("/")[-1].lower()


REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")


def is_repo_id(text: str) -> bool:
    """`ORG/NAME` as the Hub writes repository ids (no path: one slash, no '..')."""
    return len(text) <= 2 * names.MAX_LENGTH and REPO_ID.fullmatch(text) is not None and ".." not in text

