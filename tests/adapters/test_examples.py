"""Every deployment example parses and validates against the upstream schema of its kind
(vendored in ``tests/assets/schemas``, see ``SOURCES.md``), and says what the adapters and
the contract expect: routes that exist, the §7 conditions, pinned actions, least privilege."""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from engine.adapters import admission_objects, flagger, rollouts
from engine.api import create_app
from engine.config import build_settings
from engine.models.common import Verdict
from tests.conftest import ASSETS, REPO

EXAMPLES = REPO / "examples"
SCHEMAS = ASSETS / "schemas"
K8S = SCHEMAS / "kubernetes-v1.33"
FILES = sorted(
    p for d in ("k8s", "ci", "argo-rollouts", "flagger") for p in (EXAMPLES / d).glob("*.y*ml")
)
KIND_SCHEMAS = {
    ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"):
        K8S / "validatingwebhookconfiguration-admissionregistration-v1.json",
    ("apps/v1", "Deployment"): K8S / "deployment-apps-v1.json",
    ("v1", "Service"): K8S / "service-v1.json",
    ("v1", "ConfigMap"): K8S / "configmap-v1.json",
    ("v1", "ServiceAccount"): K8S / "serviceaccount-v1.json",
    ("v1", "Namespace"): K8S / "namespace-v1.json",
    ("argoproj.io/v1alpha1", "AnalysisTemplate"):
        SCHEMAS / "argo-rollouts-analysistemplate-v1alpha1.json",
    ("flagger.app/v1beta1", "Canary"): SCHEMAS / "flagger-canary-v1beta1.json",
}  # fmt: skip
# API server configuration files: not API objects, no published schema; checked by hand.
CONFIG_KINDS = {("apiserver.config.k8s.io/v1", "AdmissionConfiguration"), ("v1", "Config")}


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def example(name: str) -> list[dict[str, Any]]:
    return docs(EXAMPLES / name)


def closed(schema: Any) -> Any:
    """CRD schemas allow unknown fields (the API server prunes them); close every object
    that lists its properties, as kubeconform's strict mode does, so typos fail."""
    if isinstance(schema, dict):
        out = {k: closed(v) for k, v in schema.items()}
        if (out.get("properties") and "additionalProperties" not in out
                and not out.get("x-excerpt-open")):  # fmt: skip
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [closed(v) for v in schema]
    return schema


@cache
def validator(path: Path) -> jsonschema.protocols.Validator:
    schema = json.loads(path.read_text())
    if path.parent != K8S:
        schema = closed(schema)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def test_there_are_examples_for_every_target() -> None:
    names = {p.relative_to(EXAMPLES).as_posix() for p in FILES}
    assert {"k8s/validating-webhook.yaml", "k8s/releasegate.yaml", "ci/github-actions.yml",
            "ci/gitlab-ci.yml", "argo-rollouts/analysis-template.yaml",
            "flagger/canary.yaml"} <= names  # fmt: skip


# CI files are not Kubernetes objects: see the CI tests below.
K8S_FILES = [p for p in FILES if p.parent.name != "ci"]


@pytest.mark.parametrize("path", K8S_FILES, ids=lambda p: p.relative_to(EXAMPLES).as_posix())
def test_resources_validate_against_upstream_schemas(path: Path) -> None:
    for doc in docs(path):
        key = (doc.get("apiVersion"), doc.get("kind"))
        if key in CONFIG_KINDS:
            continue
        assert key in KIND_SCHEMAS, f"{path.name}: no schema for {key}"
        errors = sorted(validator(KIND_SCHEMAS[key]).iter_errors(doc), key=str)
        assert not errors, f"{path.name} {key}: " + "; ".join(e.message for e in errors)


def test_closed_crd_schema_rejects_a_typo() -> None:
    canary = copy.deepcopy(example("flagger/canary.yaml")[0])
    canary["spec"]["analysis"]["webhooks"][0]["metdata"] = {}
    schema = KIND_SCHEMAS[("flagger.app/v1beta1", "Canary")]
    assert list(validator(schema).iter_errors(canary))
    template = copy.deepcopy(example("argo-rollouts/analysis-template.yaml")[0])
    template["spec"]["metrics"][0]["provider"]["web"]["jsonpath"] = "{$.verdict}"
    schema = KIND_SCHEMAS[("argoproj.io/v1alpha1", "AnalysisTemplate")]
    assert list(validator(schema).iter_errors(template))


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> list[re.Pattern[str]]:
    """The POST routes of the real app (from its OpenAPI document), as regexes."""
    app = create_app(build_settings(state_dir=tmp_path_factory.mktemp("routes")))
    paths = app.openapi()["paths"]
    return [
        re.compile("^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(path)) + "$")
        for path, ops in paths.items()
        if "post" in ops
    ]


def routed(routes: list[re.Pattern[str]], path: str) -> bool:
    return any(r.match(path) for r in routes)


# -- admission webhook -------------------------------------------------------------------

RESOURCES = {
    ("", "Pod"): "pods", ("", "ReplicationController"): "replicationcontrollers",
    ("apps", "Deployment"): "deployments", ("apps", "ReplicaSet"): "replicasets",
    ("apps", "StatefulSet"): "statefulsets", ("apps", "DaemonSet"): "daemonsets",
    ("batch", "Job"): "jobs", ("batch", "CronJob"): "cronjobs",
    ("argoproj.io", "Rollout"): "rollouts",
}  # fmt: skip


def test_validating_webhook_configuration(routes: list[re.Pattern[str]]) -> None:
    (config,) = example("k8s/validating-webhook.yaml")
    assert set(RESOURCES) == set(admission_objects.POD_SPEC_PATHS)
    for hook in config["webhooks"]:
        assert hook["failurePolicy"] == "Fail"
        assert hook["sideEffects"] == "None"
        assert hook["admissionReviewVersions"] == ["v1"]
        assert 1 <= hook["timeoutSeconds"] <= 10
        exprs = hook["namespaceSelector"]["matchExpressions"]
        assert {"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                "values": ["releasegate", "kube-system"]} in exprs  # fmt: skip
        covered = {(g, res) for rule in hook["rules"] for g in rule["apiGroups"]
                   for res in rule["resources"]}  # fmt: skip
        assert {(g, RESOURCES[(g, k)]) for g, k in RESOURCES} <= covered
        assert ("", "pods/ephemeralcontainers") in covered
        assert all(set(r["operations"]) == {"CREATE", "UPDATE"} for r in hook["rules"])
        service = hook["clientConfig"]["service"]
        assert (service["namespace"], service["name"]) == ("releasegate", "releasegate")
        assert routed(routes, service["path"]), service["path"]


def test_apiserver_admission_configuration() -> None:
    admission, kubeconfig = example("k8s/apiserver-admission-config.yaml")
    plugin = admission["plugins"][0]
    assert plugin["name"] == "ValidatingAdmissionWebhook"
    assert plugin["configuration"]["kind"] == "WebhookAdmissionConfiguration"
    assert kubeconfig["users"][0]["name"] == "releasegate.releasegate.svc"
    assert "token" in kubeconfig["users"][0]["user"]


def test_releasegate_deployment_with_opa_sidecar() -> None:
    objs = {(d["kind"], d["metadata"]["name"]): d for d in example("k8s/releasegate.yaml")}
    deployment = objs[("Deployment", "releasegate")]
    containers = {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}
    assert containers["opa"]["image"] == "openpolicyagent/opa:1.22.3"
    env = {e["name"]: e for e in containers["releasegate"]["env"]}
    assert env["RELEASEGATE_OPA_URL"]["value"] == "http://127.0.0.1:8181"
    assert "--addr=127.0.0.1:8181" in containers["opa"]["args"]
    assert {"RELEASEGATE_TLS_CERT", "RELEASEGATE_TLS_KEY"} <= set(env)
    # The settings the example sets are real settings.
    settings = build_settings(
        admission_environments=json.loads(env["RELEASEGATE_ADMISSION_ENVIRONMENTS"]["value"]),
        admission_max_prior_age_s=int(env["RELEASEGATE_ADMISSION_MAX_PRIOR_AGE_S"]["value"]),
    )
    assert settings.admission_environments == {"payments": "prod"}
    opa = yaml.safe_load(objs[("ConfigMap", "releasegate-opa")]["data"]["opa.yaml"])
    bundle = opa["bundles"]["releasegate"]
    assert bundle["signing"]["keyid"] in opa["keys"]
    key = opa["keys"][bundle["signing"]["keyid"]]["key"].strip()
    assert key == (REPO / "bundles" / "releasegate.pub.pem").read_text().strip()
    service = objs[("Service", "releasegate")]
    assert service["spec"]["ports"][0]["port"] == 443


# -- CI ----------------------------------------------------------------------------------


def test_github_actions_workflow() -> None:
    path = EXAMPLES / "ci" / "github-actions.yml"
    workflow = yaml.load(path.read_text(), Loader=yaml.BaseLoader)  # keeps `on` a string key
    schema = json.loads((SCHEMAS / "github-workflows.json").read_text())
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(workflow))
    assert not errors, [e.message for e in errors]
    assert workflow["permissions"] == {}
    for job in workflow["jobs"].values():
        assert "permissions" in job
        assert set(job["permissions"].values()) <= {"read", "none"}
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
    run = " ".join(s.get("run", "") for j in workflow["jobs"].values() for s in j["steps"])
    assert "releasegate check --server" in run and "--format github" in run


def test_gitlab_ci_job() -> None:
    pipeline = yaml.safe_load((EXAMPLES / "ci" / "gitlab-ci.yml").read_text())
    schema = json.loads((SCHEMAS / "gitlab-ci.json").read_text())
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(pipeline))
    assert not errors, [e.message for e in errors]
    job = pipeline["releasegate"]
    script = " ".join(job["script"])
    assert "releasegate check --server" in script and "--format junit" in script
    assert job["artifacts"]["reports"]["junit"] == "releasegate-junit.xml"
    assert job["artifacts"]["when"] == "always"


# -- Argo Rollouts and Flagger -----------------------------------------------------------


def _condition(expr: str, result: str) -> bool:
    m = re.fullmatch(r'result == "(\w+)"', expr)
    assert m, f"unexpected condition {expr!r}"
    return result == m.group(1)


def test_analysis_template_maps_verdicts_per_contract(routes: list[re.Pattern[str]]) -> None:
    (template,) = example("argo-rollouts/analysis-template.yaml")
    (metric,) = template["spec"]["metrics"]
    web = metric["provider"]["web"]
    assert web["jsonPath"] == "{$.verdict}"
    assert routed(routes, web["url"].split(".svc", 1)[1])
    for verdict, outcome in (("allow", "Successful"), ("pause", "Inconclusive"),
                             ("rollback", "Failed")):  # fmt: skip
        ok, failed = (_condition(metric["successCondition"], verdict),
                      _condition(metric["failureCondition"], verdict))  # fmt: skip
        got = "Successful" if ok else "Failed" if failed else "Inconclusive"
        assert got == outcome == rollouts.metric_outcome(Verdict(verdict)).value
    # The body, with the args filled in, is what the hook accepts.
    sample = {"release-id": "payments-1.4.2", "service": "payments", "environment": "prod",
              "artifact-digest": "sha256:" + "a" * 64, "stage": "canary"}  # fmt: skip
    body = {k: re.sub(r"\{\{ args\.([\w-]+) \}\}", lambda m: sample[m.group(1)], v)
            for k, v in web["jsonBody"].items()}  # fmt: skip
    assert rollouts.parse_rollout_hook(body).stage == "canary"


def test_flagger_canary_uses_every_hook(routes: list[re.Pattern[str]]) -> None:
    (canary,) = example("flagger/canary.yaml")
    hooks = canary["spec"]["analysis"]["webhooks"]
    assert {h["type"] for h in hooks} == {h.value for h in flagger.FlaggerHook}
    for hook in hooks:
        path = "/" + hook["url"].split("/", 3)[3]
        assert path == f"/v1/hooks/flagger/{hook['type']}"
        assert routed(routes, path)
        payload = flagger.parse_payload({"name": canary["metadata"]["name"],
                                         "namespace": canary["metadata"]["namespace"],
                                         "phase": "Progressing", "checksum": "x",
                                         "metadata": hook["metadata"]})  # fmt: skip
        request = flagger.decision_request(payload, flagger.parse_hook(hook["type"]))
        assert request.release.id == "payments-1.4.2"
        assert request.artifact.digest == hook["metadata"]["artifact_digest"]
