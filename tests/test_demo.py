"""The demo model learns: its LAMBADA perplexity, as `evalsuite run` measures it, falls from each
saved checkpoint to the next; and what it is trained on is no evaluation document."""

from __future__ import annotations

import json
import re

import pytest

from evalsuite import store
from evalsuite.lmeval import demo
from evalsuite.paths import TASK_DATA_DIR

from conftest import run_evalsuite

SHINGLE = 8  # words: a shared run this long would be a copied passage, not a common phrase


def _shingles(text: str) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9']+", text.lower())
    return {tuple(words[i:i + SHINGLE]) for i in range(len(words) - SHINGLE + 1)}


def test_the_training_text_is_no_evaluation_document():
    trained_on = _shingles(demo.TRAINING_TEXT.read_text())
    assert len(trained_on) > 10_000
    for path in sorted(TASK_DATA_DIR.glob("*/*.jsonl")):
        for number, line in enumerate(path.open(), 1):
            text = " ".join(str(v) for v in json.loads(line).values())
            shared = _shingles(text) & trained_on
            assert not shared, f"{path.name} line {number} shares {' '.join(next(iter(shared)))!r} with the prose"


@pytest.mark.slow
def test_the_demo_models_lambada_perplexity_falls_at_every_checkpoint(tmp_path, hf_home):
    built = demo.build_demo_checkpoints(tmp_path / "demo")
    db = tmp_path / "store.duckdb"
    done = run_evalsuite(hf_home, db, "run", "--model", "demo-copy", "--model-path", str(built),
                         "--tasks", "lambada_openai", "--limit", "40")
    assert done.returncode == 0, done.stderr[-3000:]
    ppl = store.read_df(db, "SELECT step, value FROM scores WHERE source = 'local' AND metric = 'perplexity' "
                            "ORDER BY step")
    assert list(ppl["step"]) == demo.DEMO_STEPS
    values = list(ppl["value"])
    print("LAMBADA perplexity by step:", dict(zip(demo.DEMO_STEPS, values)))
    assert all(later < earlier for earlier, later in zip(values, values[1:])), values
