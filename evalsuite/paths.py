"""Where the files that ship with evalsuite live (task data, tokenizer, published results).

In a checkout (or its editable install) they are the repository's own files. A wheel carries
them as data files (pyproject's [tool.setuptools.data-files]) installed into the environment's
`share/evalsuite/`, with the same layout; the store and the demo model then go to its
`results/` too (or wherever $EVALSUITE_DB / --db says).
"""

import site
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent


def _installed_root() -> Path:
    """`share/evalsuite` of the environment evalsuite was installed into (a venv's or the
    interpreter's prefix, or the user's base for `pip install --user`)."""
    candidates = [Path(sys.prefix) / "share" / "evalsuite", Path(site.USER_BASE or "~") / "share" / "evalsuite"]
    return next((c for c in candidates if (c / "tasks.yaml").is_file()), candidates[0])


def _root() -> Path:
    # the repository: its tasks.yaml sits beside the evalsuite package
    return CHECKOUT if (CHECKOUT / "tasks.yaml").is_file() else _installed_root()


ROOT = _root()
DATA_DIR = ROOT / "data"
TASK_DATA_DIR = DATA_DIR / "tasks"
TOKENIZER_DIR = DATA_DIR / "tokenizer" / "gpt-neox-20b"
PROSE_DIR = DATA_DIR / "prose"
PUBLISHED_RAW_DIR = DATA_DIR / "pythia-published"
RESULTS_DIR = ROOT / "results"
DEFAULT_DB = RESULTS_DIR / "evalsuite.duckdb"
DEMO_MODEL_DIR = RESULTS_DIR / "demo-model"
TASKS_YAML = ROOT / "tasks.yaml"
MODELS_YAML = ROOT / "models.yaml"
