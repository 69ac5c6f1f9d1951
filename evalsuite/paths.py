"""Where the files that ship with evalsuite live (task data, tokenizer, published results)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "data"
TASK_DATA_DIR = DATA_DIR / "tasks"
TOKENIZER_DIR = DATA_DIR / "tokenizer" / "gpt-neox-20b"
PUBLISHED_RAW_DIR = DATA_DIR / "pythia-published"
RESULTS_DIR = ROOT / "results"
DEFAULT_DB = RESULTS_DIR / "evalsuite.duckdb"
DEMO_MODEL_DIR = RESULTS_DIR / "demo-model"
TASKS_YAML = ROOT / "tasks.yaml"
MODELS_YAML = ROOT / "models.yaml"
