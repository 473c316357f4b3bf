"""The Kubernetes manifests as a cluster would take them: every resource against the Kubernetes
API schema in strict mode (kubernetes-validate), the Prometheus Operator's resources against the
fields of its API, the kustomization rendered by ``kubectl kustomize``, and the hardening and
selection settings a kube-prometheus-stack install needs."""

from __future__ import annotations

import subprocess

import jsonschema
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, latest_version, validate

from cachewatch.bundle.thresholds import Thresholds

from support import ROOT, require

KUBERNETES = ROOT / "deploy" / "kubernetes"
KUSTOMIZATION = KUBERNETES / "kustomization.yaml"
MANIFESTS = sorted(p for p in KUBERNETES.glob("*.yaml") if p != KUSTOMIZATION)
# The oldest Kubernetes kubernetes-validate knows, and its newest.
VERSIONS = ("1.25.0", latest_version())


def _documents(paths=MANIFESTS) -> list[dict]:
    return [doc for path in paths for doc in yaml.safe_load_all(path.read_text()) if doc]


def _strict(schema: dict) -> dict:
    """No property beyond those named, at every level (the operator's CRDs are structural)."""
    if schema.get("type") == "object" and "properties" in schema:
        schema = {**schema, "additionalProperties": False,
                  "properties": {k: _strict(v) for k, v in schema["properties"].items()}}
    if schema.get("type") == "array":
        schema = {**schema, "items": _strict(schema["items"])}
    return schema


_STRING, _LABELS = {"type": "string"}, {"type": "object",
                                        "additionalProperties": {"type": "string"}}
_SELECTOR = {"type": "object", "properties": {
    "matchLabels": _LABELS,
    "matchExpressions": {"type": "array", "items": {"type": "object", "properties": {
        "key": _STRING, "operator": _STRING,
        "values": {"type": "array", "items": _STRING}}}}}}
_RELABEL = {"type": "object", "properties": {
    "sourceLabels": {"type": "array", "items": _STRING}, "separator": _STRING,
    "targetLabel": _STRING, "regex": _STRING, "modulus": {"type": "integer"},
    "replacement": _STRING, "action": {"enum": [
        "replace", "Replace", "keep", "Keep", "drop", "Drop", "hashmod", "HashMod", "labelmap",
        "LabelMap", "labeldrop", "LabelDrop", "labelkeep", "LabelKeep", "lowercase",
        "Lowercase", "uppercase", "Uppercase", "keepequal", "KeepEqual", "dropequal",
        "DropEqual"]}}}
_METADATA = {"type": "object", "properties": {
    "name": _STRING, "namespace": _STRING, "labels": _LABELS, "annotations": _LABELS}}
# The parts of monitoring.coreos.com/v1 that a PodMonitor and a PrometheusRule may hold, as
# the Prometheus Operator's API reference names them (the rules' PromQL is promtool's job).
OPERATOR_SCHEMAS = {
    "PodMonitor": _strict({"type": "object", "required": ["spec"], "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "PodMonitor"},
        "metadata": _METADATA,
        "spec": {"type": "object", "required": ["selector"], "properties": {
            "jobLabel": _STRING, "podTargetLabels": {"type": "array", "items": _STRING},
            "selector": _SELECTOR,
            "namespaceSelector": {"type": "object", "properties": {
                "any": {"type": "boolean"}, "matchNames": {"type": "array", "items": _STRING}}},
            "sampleLimit": {"type": "integer"},
            "podMetricsEndpoints": {"type": "array", "items": {"type": "object", "properties": {
                "port": _STRING, "path": _STRING, "scheme": {"enum": ["http", "https"]},
                "interval": {"type": "string", "pattern": r"^(0|(([0-9]+)(y|w|d|h|m|s|ms))+)$"},
                "scrapeTimeout": _STRING, "honorLabels": {"type": "boolean"},
                "relabelings": {"type": "array", "items": _RELABEL},
                "metricRelabelings": {"type": "array", "items": _RELABEL}}}}}}}}),
    "PrometheusRule": _strict({"type": "object", "required": ["spec"], "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"}, "metadata": _METADATA,
        "spec": {"type": "object", "properties": {"groups": {"type": "array", "items": {
            "type": "object", "required": ["name", "rules"], "properties": {
                "name": _STRING, "interval": _STRING,
                "rules": {"type": "array", "items": {"type": "object", "required": ["expr"],
                                                     "properties": {
                    "record": _STRING, "alert": _STRING, "expr": _STRING, "for": _STRING,
                    "labels": _LABELS, "annotations": _LABELS}}}}}}}}}}),
}


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_validates_strictly(version):
    kinds = set()
    for doc in _documents():
        kinds.add(doc["kind"])
        try:
            validate(doc, version, strict=True)
        except SchemaNotFoundError:  # a custom resource: the operator's API decides
            jsonschema.validate(doc, OPERATOR_SCHEMAS[doc["kind"]])
    assert kinds == {"Secret", "Deployment", "Service", "PodMonitor", "PrometheusRule",
                     "PersistentVolumeClaim"}


def test_the_strict_checks_refuse_a_misspelt_field():
    deployment = next(d for d in _documents() if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["securityContext"] = {"seccompProfil": {}}
    with pytest.raises(Exception, match="seccompProfil"):
        validate(deployment, VERSIONS[-1], strict=True)
    monitor = next(d for d in _documents() if d["kind"] == "PodMonitor")
    monitor["spec"]["podMetricEndpoints"] = monitor["spec"].pop("podMetricsEndpoints")
    with pytest.raises(jsonschema.ValidationError, match="podMetricEndpoints"):
        jsonschema.validate(monitor, OPERATOR_SCHEMAS["PodMonitor"])


def test_the_kustomization_lists_every_manifest_and_each_exists():
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text())
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(p.name for p in MANIFESTS)
    for resource in kustomization["resources"]:
        assert (KUBERNETES / resource).is_file(), resource


@pytest.mark.e2e
def test_kubectl_kustomize_renders_every_resource():
    kubectl = require("kubectl", "kubernetes-client")
    rendered = subprocess.run([kubectl, "kustomize", str(KUBERNETES)], capture_output=True,
                              text=True, check=False, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    documents = [d for d in yaml.safe_load_all(rendered.stdout) if d]

    def names(docs: list[dict]) -> list[tuple[str, str]]:
        return sorted((d["kind"], d["metadata"]["name"]) for d in docs)

    assert names(documents) == names(_documents())
    for doc in documents:
        if doc["kind"] in OPERATOR_SCHEMAS:
            jsonschema.validate(doc, OPERATOR_SCHEMAS[doc["kind"]])
        else:
            validate(doc, VERSIONS[-1], strict=True)


def _pods() -> list[dict]:
    return [d["spec"]["template"]["spec"] for d in _documents() if d["kind"] == "Deployment"]


def test_every_pod_and_container_is_hardened_and_sized():
    assert len(_pods()) == 3  # the sidecar, the receivers, their shared state
    for pod in _pods():
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["runAsNonRoot"] is True, container["name"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["readOnlyRootFilesystem"] is True
            assert security["capabilities"] == {"drop": ["ALL"]}
            resources = container["resources"]
            assert resources["requests"]["cpu"]
            assert resources["requests"]["memory"]
            assert resources["limits"]["memory"], container["name"]


def test_the_receivers_run_two_replicas_on_shared_state_and_say_why():
    text = (KUBERNETES / "receiver.yaml").read_text()
    receiver = next(d for d in _documents() if d["metadata"]["name"] == "cachewatch-receiver"
                    and d["kind"] == "Deployment")
    assert receiver["spec"]["replicas"] == 2
    comment = text[:text.index("replicas: 2")].rsplit("spec:", 1)[1]
    assert "de-duplication is shared" in comment
    env = {e["name"]: e for e in receiver["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CACHEWATCH_STATE__URL"]["value"].startswith("redis://cachewatch-state:")
    # a stable replica id: the pod's name, so a restarted replica restores its own counters
    assert env["CACHEWATCH_STATE__REPLICA_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == \
        "metadata.name"


def test_operator_resources_carry_the_selector_label_and_the_job():
    thresholds = Thresholds()
    for doc in _documents():
        if doc["kind"] in OPERATOR_SCHEMAS:
            assert doc["metadata"]["labels"]["release"] == "kube-prometheus-stack", doc["kind"]
    monitor = next(d for d in _documents() if d["kind"] == "PodMonitor")
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    # up{job="cachewatch"} of CachewatchDown finds these pods, not "<namespace>/cachewatch"
    assert {r["targetLabel"]: r["replacement"] for r in endpoint["relabelings"]} == \
        thresholds.cachewatch_labels
