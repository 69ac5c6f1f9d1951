"""A counting stand-in for checkpoints.place_on_device: it places models the real way and counts, with
weak references, how many of the models it placed are still alive. The proof that a loop keeps
at most one model on the accelerator: `peak` is the most placed models alive at once, counted
at each placement (the new one included), after a garbage collection.

    placer = CountingPlacer()
    monkeypatch.setattr(checkpoints, "place_on_device", placer)  # the loop calls checkpoints.place_on_device
    ...run the loop over several checkpoints...
    assert placer.placed >= 2 and placer.peak == 1
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable


class CountingPlacer:
    def __init__(self, place: Callable | None = None):
        from evalsuite.lmeval import checkpoints

        self._place = place or checkpoints.place_on_device
        self._refs: list[weakref.ref] = []
        self.peak = 0

    def __call__(self, loaded, device: str):
        self.peak = max(self.peak, self.alive() + 1)
        placed = self._place(loaded, device)
        self._refs.append(weakref.ref(placed.model))
        return placed

    @property
    def placed(self) -> int:
        return len(self._refs)

    def alive(self) -> int:
        gc.collect()
        return sum(ref() is not None for ref in self._refs)
