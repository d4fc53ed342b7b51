"""The operations files parse and agree with each other and with configs/nightly.yaml: entrypoint,
image, Ray version, and enough CPUs and GPUs for what the nightly config asks of the cluster."""

import re
import shlex
from pathlib import Path

import yaml

from pipeline.config import load_config
from tests.conftest import ROOT

KUBERAY = ROOT / "infra" / "kuberay"


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _quantity(value) -> float:
    return float(str(value))


def nightly():
    return load_config(ROOT / "configs" / "nightly.yaml")


def gpus_asked(cfg) -> float:
    ex = cfg.extract
    return ex.num_actors * ex.num_gpus_per_actor + ex.doc_actors * ex.doc_num_gpus


def test_every_manifest_parses():
    for path in [*KUBERAY.glob("*.yaml"), ROOT / "infra" / "ray" / "cluster.yaml", ROOT / "infra" / "ray" / "runtime_env.yaml",
                 *(ROOT / "configs").rglob("*.yaml")]:
        assert _docs(path), path


def test_the_rayjob_runs_the_nightly_command_on_one_image_and_the_pinned_ray():
    (job,) = _docs(KUBERAY / "rayjob.yaml")
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    argv = shlex.split(spec["entrypoint"])
    assert argv[:2] == ["pubmine", "run"] and argv[argv.index("--config") + 1] == "configs/nightly.yaml"
    # the same command as infra/jobs/nightly.sh (ray job submit on an existing cluster)
    assert "pubmine run --config configs/nightly.yaml" in (ROOT / "infra" / "jobs" / "nightly.sh").read_text()
    cluster = spec["rayClusterSpec"]
    pinned = re.search(r'"ray\[[^\]]*\]==([\d.]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    assert cluster["rayVersion"] == pinned
    pods = [cluster["headGroupSpec"]["template"]] + [g["template"] for g in cluster["workerGroupSpecs"]]
    images = {c["image"] for p in pods for c in p["spec"]["containers"]}
    assert len(images) == 1
    dockerfile = (KUBERAY / "Dockerfile").read_text()
    assert f"FROM rayproject/ray:{pinned}-py311-gpu" in dockerfile and "WORKDIR /app" in dockerfile
    assert "working_dir: /app" in spec["runtimeEnvYAML"] and spec["shutdownAfterJobFinishes"] is True


def test_the_rayjob_cluster_has_the_gpus_and_cpus_the_nightly_config_asks_for():
    cfg = nightly()
    (job,) = _docs(KUBERAY / "rayjob.yaml")
    groups = {g["groupName"]: g for g in job["spec"]["rayClusterSpec"]["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "gpu"}

    def per_pod(group, resource):
        (container,) = group["template"]["spec"]["containers"]
        res = container["resources"]
        assert res["requests"] == res["limits"]  # guaranteed QoS: Ray sees what Kubernetes reserves
        return _quantity(res["limits"].get(resource, 0))

    gpus = per_pod(groups["gpu"], "nvidia.com/gpu") * groups["gpu"]["maxReplicas"]
    assert gpus >= gpus_asked(cfg) > 0
    assert per_pod(groups["cpu"], "nvidia.com/gpu") == 0
    # every GPU actor's CPUs fit on the GPU pods beside their GPUs
    ex = cfg.extract
    per_gpu_pod = per_pod(groups["gpu"], "nvidia.com/gpu")
    ner_per_pod = per_gpu_pod / ex.num_gpus_per_actor
    assert ner_per_pod * ex.num_cpus_per_actor <= per_pod(groups["gpu"], "cpu")
    # the CPU group runs at least one parse task and the tokenizer actors
    assert per_pod(groups["cpu"], "cpu") * groups["cpu"]["maxReplicas"] >= cfg.parse.num_cpus + ex.tokenize_actors * ex.tokenize_num_cpus


def test_the_schedule_creates_the_rayjob_nightly_one_at_a_time():
    docs = {d["kind"]: d for d in _docs(KUBERAY / "cronjob.yaml")}
    cron = docs["CronJob"]["spec"]
    assert len(cron["schedule"].split()) == 5 and cron["concurrencyPolicy"] == "Forbid"
    pod = cron["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["kubectl", "create", "-f", "/manifests/rayjob.yaml"]
    (volume,) = pod["volumes"]
    assert volume["configMap"]["name"] == "pubmine-rayjob"
    assert "kubectl create configmap pubmine-rayjob --from-file=rayjob.yaml=infra/kuberay/rayjob.yaml" in (
        KUBERAY / "cronjob.yaml").read_text()
    rules = docs["Role"]["rules"]
    assert any("rayjobs" in r["resources"] and "create" in r["verbs"] for r in rules)
    assert docs["RoleBinding"]["subjects"][0]["name"] == pod["serviceAccountName"] == docs["ServiceAccount"]["metadata"]["name"]
    (job,) = _docs(KUBERAY / "rayjob.yaml")
    assert "generateName" in job["metadata"]  # kubectl create makes a new RayJob every night


def test_the_ray_up_cluster_has_a_gpu_group_big_enough():
    cluster = yaml.safe_load((ROOT / "infra" / "ray" / "cluster.yaml").read_text())
    types = cluster["available_node_types"]
    gpu = types["gpu_workers"]
    assert gpu["resources"]["GPU"] * gpu["max_workers"] >= gpus_asked(nightly())
    # the cluster-wide cap lets both groups reach their size at once
    assert cluster["max_workers"] >= types["cpu_workers"]["max_workers"] + gpu["max_workers"]
