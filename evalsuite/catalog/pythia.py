"""Pythia's checkpoint schedule and architectures: facts the Pythia model cards state once for
every model that keeps Pythia's training setup (the suite, pythia-14m and 31m, the PolyPythias).

The models themselves are catalog entries (catalog/builtin.yaml); this module only holds what
they share: the 154 checkpoints (step0, ten log-spaced steps 1 ... 512, then every 1000 to
143000; `main` is step143000), the 27 steps EleutherAI published evaluations of, and each size's
shape (layers, width, heads; `vocab` is the padded embedding size of its config.json), from
which tests and benchmarks build tiny models of that shape.
"""

from __future__ import annotations

GRID = "pythia"  # a catalog entry's `checkpoints: pythia`
FINAL_STEP = 143_000  # the `main` revision
LOG_STEPS = [0] + [2**i for i in range(10)]  # 0, 1, 2, 4 ... 512
ALL_STEPS = LOG_STEPS + list(range(1000, FINAL_STEP + 1, 1000))  # 154 checkpoints
PUBLISHED_STEPS = LOG_STEPS + [1000, 3000] + list(range(13_000, FINAL_STEP + 1, 10_000))

SIZES = {  # size: layers, width, heads, vocab
    "14m": (6, 128, 4, 50304), "31m": (6, 256, 8, 50304),
    "70m": (6, 512, 8, 50304), "160m": (12, 768, 12, 50304), "410m": (24, 1024, 16, 50304),
    "1b": (16, 2048, 8, 50304), "1.4b": (24, 2048, 16, 50304), "2.8b": (32, 2560, 32, 50304),
    "6.9b": (32, 4096, 32, 50432), "12b": (36, 5120, 40, 50688),
}

