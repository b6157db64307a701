"""Fixtures for the enforcement adapters: the real OPA with the repo's policies, a real
signed decision log (SQLite in ``tmp_path``), and AdmissionReview builders shaped like the
Kubernetes API reference (``admission.k8s.io/v1``)."""

from __future__ import annotations

import copy
import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.decision import DecisionPipeline
from engine.engines.opa import ManagedOpaEngine
from engine.engines.policy_source import PolicySource
from engine.inputs.base import FactProviders, NoApprovalStore
from engine.inputs.provenance import ProvenanceVerifier
from engine.inputs.providers import ScanReports, SigstoreProvenance
from engine.log import DecisionLog, open_decision_log
from engine.models.common import SectionStatus
from engine.models.inputs import ReleaseFacts
from engine.models.slo import SloSection
from tests.conftest import POLICIES

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


class FixedSlo:
    """An SLO provider returning one fixed section (a fake, not a mock)."""

    def __init__(self, section: SloSection | None = None) -> None:
        self.section = section or SloSection(status=SectionStatus.MISSING)

    def collect(self, release: ReleaseFacts, *, now_ns: int) -> SloSection:
        """The fixed section."""
        return self.section


@pytest.fixture(scope="session")
def policy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``policies/releasegate`` (tests excluded) with its data, minus the freeze windows.

    The committed data freezes prod over the year end; the service decides at the wall-clock
    time, so without this the rollout-hook tests would depend on the date they run.
    """
    src = POLICIES / "releasegate"
    dst = tmp_path_factory.mktemp("adapter-policy") / "releasegate"
    (dst / "config").mkdir(parents=True)
    for rego in src.glob("*.rego"):
        if not rego.name.endswith("_test.rego"):
            shutil.copy(rego, dst / rego.name)
    data = json.loads((src / "config" / "data.json").read_text())
    data["freeze"] = {"windows": []}
    (dst / "config" / "data.json").write_text(json.dumps(data))
    return dst.parent


@pytest.fixture(scope="module")
def opa_engine(opa_binary: Path, policy_dir: Path) -> Iterator[ManagedOpaEngine]:
    """One managed OPA serving the repository's policy for the module."""
    engine = ManagedOpaEngine(PolicySource(policy_dir), opa=opa_binary)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def verifier() -> ProvenanceVerifier:
    """The packaged public-good trust root."""
    return ProvenanceVerifier.from_settings()


@pytest.fixture
def decision_log(tmp_path: Path) -> Iterator[DecisionLog]:
    """A fresh signed log in ``tmp_path``."""
    log = open_decision_log(tmp_path / "state")
    yield log
    log.close()


@pytest.fixture
def slo() -> FixedSlo:
    """The SLO state the pipeline sees (``missing`` unless a test sets it)."""
    return FixedSlo()


@pytest.fixture
def pipeline(
    opa_engine: ManagedOpaEngine,
    decision_log: DecisionLog,
    verifier: ProvenanceVerifier,
    slo: FixedSlo,
) -> DecisionPipeline:
    """The real pipeline: real OPA, real providers (fixed SLO), the real log as recorder."""
    providers = FactProviders(
        provenance=SigstoreProvenance(verifier),
        vulnerabilities=ScanReports(),
        slo=slo,
        approvals=NoApprovalStore(),
    )
    return DecisionPipeline(engine=opa_engine, providers=providers, recorder=decision_log)


def pod_spec(
    image: str, *, init: str | None = None, ephemeral: str | None = None
) -> dict[str, Any]:
    """A PodSpec with one container, and optionally an init and an ephemeral container."""
    spec: dict[str, Any] = {
        "containers": [{"name": "app", "image": image, "ports": [{"containerPort": 8080}]}],
        "restartPolicy": "Always",
    }
    if init is not None:
        spec["initContainers"] = [{"name": "migrate", "image": init}]
    if ephemeral is not None:
        spec["ephemeralContainers"] = [{"name": "debugger", "image": ephemeral}]
    return spec


def _template(spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"labels": {"app.kubernetes.io/name": "payments"}}, "spec": spec}


# (group, version, kind, resource) and a builder of the object around a pod spec.
WORKLOADS: dict[str, tuple[str, str, str, Any]] = {
    "Pod": ("", "v1", "pods", lambda s: {"spec": s}),
    "Deployment": ("apps", "v1", "deployments",
                   lambda s: {"spec": {"replicas": 2, "selector": {"matchLabels": {"app": "p"}},
                                       "template": _template(s)}}),
    "ReplicaSet": ("apps", "v1", "replicasets",
                   lambda s: {"spec": {"selector": {"matchLabels": {"app": "p"}},
                                       "template": _template(s)}}),
    "StatefulSet": ("apps", "v1", "statefulsets",
                    lambda s: {"spec": {"serviceName": "p", "selector": {},
                                        "template": _template(s)}}),
    "DaemonSet": ("apps", "v1", "daemonsets",
                  lambda s: {"spec": {"selector": {}, "template": _template(s)}}),
    "Job": ("batch", "v1", "jobs",
            lambda s: {"spec": {"template": _template({**s, "restartPolicy": "Never"})}}),
    "CronJob": ("batch", "v1", "cronjobs",
                lambda s: {"spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {
                    "template": _template({**s, "restartPolicy": "OnFailure"})}}}}),
    "Rollout": ("argoproj.io", "v1alpha1", "rollouts",
                lambda s: {"spec": {"replicas": 3, "strategy": {"canary": {"steps": [
                    {"setWeight": 20}]}}, "template": _template(s)}}),
}  # fmt: skip


def review(
    kind: str,
    spec: dict[str, Any] | None = None,
    *,
    image: str = f"ghcr.io/acme/payments@{DIGEST_A}",
    operation: str = "CREATE",
    namespace: str = "payments",
    name: str = "payments",
    dry_run: bool = False,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An ``admission.k8s.io/v1`` AdmissionReview request as the API server sends it."""
    group, version, resource, build = WORKLOADS[kind]
    obj = build(spec if spec is not None else pod_spec(image))
    api_version = f"{group}/{version}" if group else version
    obj = {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        **obj,
    }
    gvk = {"group": group, "version": version, "kind": kind}
    gvr = {"group": group, "version": version, "resource": resource}
    request: dict[str, Any] = {
        "uid": str(uuid.uuid4()),
        "kind": gvk,
        "resource": gvr,
        "requestKind": gvk,
        "requestResource": gvr,
        "name": name,
        "namespace": namespace,
        "operation": operation,
        "userInfo": {"username": "alice@example.com", "groups": ["system:authenticated"]},
        "object": obj,
        "oldObject": copy.deepcopy(obj) if operation == "UPDATE" else None,
        "dryRun": dry_run,
        "options": {
            "apiVersion": "meta.k8s.io/v1",
            "kind": "CreateOptions" if operation == "CREATE" else "UpdateOptions",
        },
    }
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
