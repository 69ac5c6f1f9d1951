"""The cluster launch examples, checked as far as this machine can: the SLURM script's syntax
(bash -n, and shellcheck where installed) and the KubeRay manifest's structure (every field
KubeRay's v1 API requires, as its Go types declare them: json tags without omitempty), and in both
the `evalsuite run` command parsed by evalsuite's own parser. Neither has run on a real
scheduler here (examples/*/README.md says what was and was not checked)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tomllib

import pytest
import yaml

from evalsuite.cli import build_parser
from evalsuite.paths import ROOT
from evalsuite.sweep.cluster import options_from_args

SBATCH = ROOT / "examples" / "slurm" / "sweep.sbatch"
RAYJOB = ROOT / "examples" / "kubernetes" / "rayjob.yaml"
DOCKERFILE = ROOT / "examples" / "kubernetes" / "Dockerfile"


def _ray_pin() -> str:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pin, = extras["ray"]
    return pin.removeprefix("ray==")


def _run_args(command: str) -> object:
    """An `evalsuite run ...` command line as the CLI parses it, its --ray checked too."""
    words = shlex.split(command)
    assert words[:2] == ["evalsuite", "run"], command
    args = build_parser().parse_args(words[1:])
    assert options_from_args(args) is not None, "the command does not use --ray"
    return args


def test_the_slurm_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(SBATCH)], check=True)


@pytest.mark.skipif(shutil.which("shellcheck") is None,
                    reason="shellcheck is not installed (apt-get install shellcheck)")
def test_the_slurm_script_passes_shellcheck():
    result = subprocess.run(["shellcheck", str(SBATCH)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_the_slurm_script_runs_a_valid_sweep_on_every_node():
    text = SBATCH.read_text()
    default = re.search(r'SWEEP_ARGS:-(.*?)}"', text).group(1)
    args = _run_args(f"evalsuite run {default} --ray 10.0.0.1:6379 --db /scratch/s.duckdb")
    assert (args.model, args.steps, args.cleanup) == ("all", "all", True)
    assert '"$BIN/evalsuite" run "${sweep_args[@]}" --ray "$address" --db "$STORE"' in text
    for directive in ("--nodes=", "--gpus-per-node=", "--cpus-per-task="):
        assert f"#SBATCH {directive}" in text
    assert "ray\" start --head" in text and "ray\" start --address=\"$address\"" in text
    assert "RAY_AUTH_MODE=token" in text  # every node shares a token made for the job


def _documents() -> dict[str, dict]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(RAYJOB.read_text())}


def _pod_spec(template: dict, where: str) -> dict:
    spec = template["spec"]
    assert spec["containers"], f"{where}: no container"
    for container in spec["containers"]:
        assert container.get("name") and container.get("image"), f"{where}: a container needs name and image"
        mounts = {m["name"] for m in container.get("volumeMounts", [])}
        assert mounts <= {v["name"] for v in spec.get("volumes", [])}, f"{where}: a mount without its volume"
    return spec


def test_the_rayjob_has_every_field_kuberay_requires():
    docs = _documents()
    job = docs["RayJob"]
    assert job["apiVersion"] == "ray.io/v1" and job["metadata"]["name"]
    spec = job["spec"]
    assert spec["submissionMode"] in ("K8sJobMode", "HTTPMode")
    cluster = spec["rayClusterSpec"]
    head = cluster["headGroupSpec"]
    assert isinstance(head["rayStartParams"], dict) and all(isinstance(v, str) for v in head["rayStartParams"].values())
    _pod_spec(head["template"], "head")
    for group in cluster["workerGroupSpecs"]:
        assert group["groupName"] and isinstance(group["rayStartParams"], dict)
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        container, = _pod_spec(group["template"], group["groupName"])["containers"]
        assert int(container["resources"]["limits"]["nvidia.com/gpu"]) >= 1


def test_the_rayjob_runs_a_valid_sweep_into_its_volume_with_the_pinned_ray():
    docs = _documents()
    job, claim = docs["RayJob"], docs["PersistentVolumeClaim"]
    args = _run_args(job["spec"]["entrypoint"])
    assert args.ray == "auto" and args.model == "all" and args.cleanup
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    mount, = head["containers"][0]["volumeMounts"]
    volume, = head["volumes"]
    assert args.db.startswith(mount["mountPath"] + "/")  # the store outlives the cluster ...
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]  # ... on this claim
    assert job["spec"]["rayClusterSpec"]["rayVersion"] == _ray_pin()
    assert f"FROM rayproject/ray:{_ray_pin()}-" in DOCKERFILE.read_text()
    images = {c["image"] for g in [job["spec"]["rayClusterSpec"]["headGroupSpec"],
                                   *job["spec"]["rayClusterSpec"]["workerGroupSpecs"]]
              for c in g["template"]["spec"]["containers"]}
    assert len(images) == 1  # the driver and every worker run the same build
