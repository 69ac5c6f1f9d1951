"""tasks.yaml parsing, and the local-data errors a user can hit."""

from __future__ import annotations

import pytest

from evalsuite.catalog.tasks import load_tasks
from evalsuite.cli import main
from evalsuite.errors import EvalsuiteError
from evalsuite.paths import TASK_DATA_DIR


def test_default_tasks():
    suite = load_tasks()
    assert list(suite.tasks) == ["lambada_openai", "piqa", "winogrande", "arc_easy", "sciq"]
    assert suite.tasks["lambada_openai"].metrics == ("acc", "perplexity")
    assert suite.data_dir == TASK_DATA_DIR
    assert suite.with_data_dir("hub").data_dir is None


@pytest.mark.parametrize("text,message", [
    ("tasks: [piqa", "not valid YAML"),
    ("- piqa\n", "expected a mapping with a non-empty 'tasks:' mapping"),
    ("tasks:\n  piqa: {lm_eval_task: piqa}\n", "task 'piqa' needs 'metrics:' as a non-empty list"),
    ("tasks:\n  piqa: acc\n", "task 'piqa' must be a mapping"),
    ("data_dir: /nonexistent\ntasks:\n  piqa: {metrics: [acc]}\n", "data directory /nonexistent does not exist"),
])
def test_malformed_tasks_yaml(tmp_path, text, message):
    path = tmp_path / "tasks.yaml"
    path.write_text(text)
    with pytest.raises(EvalsuiteError, match=message):
        load_tasks(path)


def test_malformed_tasks_file_from_the_cli(tmp_path, capsys):
    path = tmp_path / "tasks.yaml"
    path.write_text("tasks:\n  piqa: {lm_eval_task: piqa}\n")
    assert main(["run", "--tasks-file", str(path), "--db", str(tmp_path / "s.duckdb")]) == 2
    assert capsys.readouterr().err == (
        f"evalsuite: error: {path}: task 'piqa' needs 'metrics:' as a non-empty list of names\n")
    assert not (tmp_path / "s.duckdb").exists()


def test_unknown_task(capsys):
    assert main(["run", "--tasks", "piqa,hellaswag"]) == 2
    err = capsys.readouterr().err
    assert "unknown task 'hellaswag'; valid: lambada_openai, piqa, winogrande, arc_easy, sciq" in err


def test_missing_data_file_and_missing_fewshot_split(tmp_path):
    from evalsuite.lmeval.definitions import task_configs

    (tmp_path / "piqa").mkdir()
    suite = load_tasks()
    with pytest.raises(EvalsuiteError, match=r"task 'piqa': missing data file .*/piqa/validation\.jsonl"):
        task_configs(suite.select(["piqa"]), tmp_path, 0)
    with pytest.raises(EvalsuiteError, match=r"task 'piqa': 5-shot needs the 'train' split"):
        task_configs(suite.select(["piqa"]), suite.data_dir, 5)
    arc = task_configs(suite.select(["arc_easy"]), suite.data_dir, 5)[0]  # ARC ships its train split
    assert arc["dataset_path"] == "json" and arc["training_split"] == "train"
    lambada = task_configs(suite.select(["lambada_openai"]), suite.data_dir, 5)[0]  # lm-eval: from test
    assert lambada["test_split"] == "test" and not lambada.get("training_split")
