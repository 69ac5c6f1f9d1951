"""What the statistics need to know about a model: its family (whose models make a scaling
curve and the signal across sizes) and its parameter count and tokens per step.

The store's models table says (it holds the built-in catalog's entries and what every run or
import wrote); a model it does not list falls back to the built-in catalog, then to nothing.
"""

from __future__ import annotations

from pathlib import Path

from evalsuite.records import Model


def known(db: Path | None = None) -> dict[str, Model]:
    """Each model's facts: the built-in catalog's, overridden by the store's models table."""
    from evalsuite import store
    from evalsuite.catalog.entries import builtin_catalog

    facts = {spec.name: spec.record() for spec in builtin_catalog()}
    if db is not None:
        facts.update(store.known_models(db))
    return facts


def family_of(model: str, facts: dict[str, Model] | None = None) -> str:
    """The family a model belongs to (pythia, pythia-deduped, opt, ...); a model nothing
    describes is a family of its own, named after it."""
    about = (facts if facts is not None else known()).get(model)
    return about.family if about is not None and about.family != "other" else model


def params_of(model: str, facts: dict[str, Model] | None = None) -> int | None:
    """Total parameters, or None where nothing says."""
    about = (facts if facts is not None else known()).get(model)
    return about.params if about is not None else None


def tokens_per_step_of(model: str, facts: dict[str, Model] | None = None) -> int | None:
    about = (facts if facts is not None else known()).get(model)
    return about.tokens_per_step if about is not None else None
