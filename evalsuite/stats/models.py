"""What the statistics need to know about a model: its family (whose models make a scaling
curve and the signal across sizes) and its parameter count.

Both come from catalog/baselines.py today. When the model catalog replaces it, `model_info` below
is the one line to change.
"""

from __future__ import annotations

from evalsuite.catalog.baselines import model_info


def family_of(model: str) -> str:
    """The family a model belongs to (pythia, pythia-deduped, opt, bloom); a model the catalog
    does not know is a family of its own, named after it."""
    info = model_info(model)
    return info.family if info else model


def params_of(model: str) -> int | None:
    """Total parameters, or None for a model the catalog does not know."""
    info = model_info(model)
    return info.params if info else None
