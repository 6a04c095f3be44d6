"""deploy/kubernetes renders with kustomize, every object validates against the Kubernetes schemas,
and what the pods are told to run is what Portside understands: its commands, its probe paths and
its configuration file."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from portside.config_loading import load

KUSTOMIZE = Path(__file__).parents[2] / "deploy" / "kubernetes"
K8S_VERSION = "1.33.0"  # the oldest Kubernetes we claim; the schemas ship with kubernetes-validate


def render(overlay: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or "kubectl"
    out = subprocess.run([kubectl, "kustomize", str(KUSTOMIZE / "overlays" / overlay)], check=True,
                         capture_output=True, text=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    spec = deployment["spec"]["template"]["spec"]
    return list(spec.get("initContainers", [])) + list(spec["containers"])


@pytest.mark.parametrize("overlay", ["single-node", "ha"])
def test_every_object_validates(overlay: str) -> None:
    objects = render(overlay)
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "NetworkPolicy"} <= kinds
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)  # raises on any unknown or wrong field


@pytest.mark.parametrize("overlay", ["single-node"])
def test_pods_run_portside_commands_with_its_config(overlay: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    objects = render(overlay)
    config = by_kind(objects, "ConfigMap")[0]["data"]["portside.yaml"]
    (tmp_path / "portside.yaml").write_text(config)
    monkeypatch.setenv("PORTSIDE_ADMIN_PASSWORD", "from-the-secret")
    settings = load(tmp_path / "portside.yaml", {})
    assert settings.initial_admin_password() == "from-the-secret"
    commands = {c["args"][0] for d in by_kind(objects, "Deployment") for c in containers(d)}
    assert commands <= {"serve", "migrate", "worker"}
    for deployment in by_kind(objects, "Deployment"):
        for container in containers(deployment):
            secrets = [s["secretRef"]["name"] for s in container.get("envFrom", [])]
            assert secrets == ["portside-secrets"], container["name"]
            mounted = {m["mountPath"] for m in container["volumeMounts"]}
            assert str(settings.data_dir) in mounted and "/etc/portside" in mounted
    registry = next(d for d in by_kind(objects, "Deployment") if d["metadata"]["name"] == "portside")
    serve = registry["spec"]["template"]["spec"]["containers"][0]
    assert serve["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert serve["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert serve["ports"][0]["containerPort"] == settings.port


def test_single_node_keeps_its_data_on_a_claim_and_never_runs_two_pods() -> None:
    objects = render("single-node")
    registry = by_kind(objects, "Deployment")[0]
    assert registry["spec"]["replicas"] == 1 and registry["spec"]["strategy"]["type"] == "Recreate"
    data = next(v for v in registry["spec"]["template"]["spec"]["volumes"] if v["name"] == "data")
    assert data == {"name": "data", "persistentVolumeClaim": {"claimName": "portside-data"}}
    assert by_kind(objects, "PersistentVolumeClaim")[0]["metadata"]["name"] == "portside-data"


def test_ha_serves_from_three_replicas_and_runs_jobs_in_one_worker(tmp_path: Path) -> None:
    objects = render("ha")
    deployments = {d["metadata"]["name"]: d for d in by_kind(objects, "Deployment")}
    assert deployments["portside"]["spec"]["replicas"] == 3
    assert deployments["portside-worker"]["spec"]["template"]["spec"]["containers"][0]["args"][0] == "worker"
    config = yaml.safe_load(by_kind(objects, "ConfigMap")[0]["data"]["portside.yaml"])
    assert config["jobs"]["run_in_server"] is False and config["storage"]["driver"] == "s3"
