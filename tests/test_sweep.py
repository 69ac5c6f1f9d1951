"""Planning a sweep: which (model, step) jobs a command means, and where each checkpoint loads from."""

from __future__ import annotations

from evalsuite import store
from evalsuite.cli import build_parser
from evalsuite.lmeval.demo import DEMO_STEPS
from evalsuite.sweep.config import config_from_args
from evalsuite.sweep.plan import checkpoint_for, plan

import factory


def _config(tmp_path, *args):
    return config_from_args(build_parser().parse_args(["run", "--db", str(tmp_path / "s.duckdb"), *args]))


def test_all_steps_of_a_model_are_154_hub_jobs(tmp_path):
    cfg = _config(tmp_path, "--model", "pythia-70m", "--steps", "all")
    jobs = plan(cfg, "float16")
    assert len(jobs) == 154 and jobs[0].step == 0 and jobs[-1].step == 143_000
    assert all(len(job.tasks) == 5 for job in jobs)
    ckpt = checkpoint_for(cfg, "pythia-70m", 143_000)
    assert (ckpt.repo_id, ckpt.revision, ckpt.local_dir) == ("EleutherAI/pythia-70m", "step143000", None)


def test_defaults_are_the_demo_model(tmp_path):
    cfg = _config(tmp_path)
    assert cfg.models == ["pythia-demo"] and cfg.steps == {"pythia-demo": DEMO_STEPS}
    assert cfg.limit == 100 and cfg.shots == 0 and cfg.backend == "fast"


def test_plan_skips_only_what_is_stored_with_the_same_settings(tmp_path):
    cfg = _config(tmp_path, "--model", "pythia-160m,pythia-160m-deduped", "--steps", "0:4", "--tasks", "piqa,sciq")
    db = store.init(cfg.db)  # seeded with the published scores: source 'published', never skipped
    assert len(plan(cfg, "float32")) == 2 * 4
    store.write_job(db, factory.job("pythia-160m", 2))
    jobs = {(j.model, j.step): [t.name for t in j.tasks] for j in plan(cfg, "float32")}
    assert jobs[("pythia-160m", 2)] == ["sciq"] and jobs[("pythia-160m-deduped", 2)] == ["piqa", "sciq"]
    assert len(plan(cfg, "float16")) == 8  # another dtype is another evaluation


def test_model_path_layouts(tmp_path):
    nested = tmp_path / "ckpts" / "pythia-70m" / "step1000"
    nested.mkdir(parents=True)
    (tmp_path / "flat" / "step1000").mkdir(parents=True)
    cfg = _config(tmp_path, "--model", "pythia-70m", "--model-path", str(tmp_path / "ckpts"))
    assert checkpoint_for(cfg, "pythia-70m", 1000).local_dir == nested
    cfg = _config(tmp_path, "--model", "pythia-70m", "--model-path", str(tmp_path / "flat"))
    assert checkpoint_for(cfg, "pythia-70m", 1000).local_dir == tmp_path / "flat" / "step1000"


def test_at_most_one_model_on_the_device_and_a_bad_checkpoint_is_skipped(tmp_path, checkpoints, monkeypatch, capsys):
    """Three checkpoints, the middle one corrupt: the other two are evaluated and stored, each
    placed on the device only after the previous one was released; the bad one is named."""
    import shutil

    from evalsuite.cli import main
    from evalsuite.lmeval import checkpoints as loading

    from placement import CountingPlacer

    root = tmp_path / "ckpts"
    shutil.copytree(checkpoints, root)
    weights = next((root / "step2000").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated: a download that broke off
    placer = CountingPlacer()
    monkeypatch.setattr(loading, "place_on_device", placer)
    db = tmp_path / "s.duckdb"
    status = main(["run", "--model", "pythia-70m", "--model-path", str(root), "--steps", "1000,2000,3000",
                   "--tasks", "arc_easy", "--limit", "3", "--db", str(db)])
    err = capsys.readouterr().err
    assert status == 2 and placer.placed == 2 and placer.peak == 1
    assert "not evaluated: pythia-70m step 2000: pythia-70m step 2000: cannot load" in err
    assert err.strip().splitlines()[-1].startswith("evalsuite: error: 1 checkpoint(s) could not be evaluated")
    stored = store.read_df(db, "SELECT DISTINCT step FROM scores WHERE source = 'local' ORDER BY step")
    assert list(stored.step) == [1000, 3000]
    sweep = store.read_df(db, "SELECT planned, done, status FROM sweeps").values.tolist()
    assert sweep == [[3, 2, "done"]]
