"""SLSA provenance (v0.2, v1) and Verification Summary (v1) predicates into facts.

Only fields the policy reads are extracted; each one must have the type the SLSA spec
gives it, otherwise the attestation is ``invalid`` (it claims a predicate type it does
not follow). Unknown predicate types yield no SLSA/VSA facts, which is not an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.inputs.provenance.common import Rejected
from engine.inputs.provenance.common import field as get
from engine.models.provenance import SlsaFacts, VsaFacts

SLSA_PROVENANCE_V02 = "https://slsa.dev/provenance/v0.2"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
SLSA_VSA_V1 = "https://slsa.dev/verification_summary/v1"


def slsa_facts(predicate_type: str, predicate: Mapping[str, Any]) -> SlsaFacts | None:
    """SLSA facts for a provenance predicate, or ``None`` for another predicate type."""
    if predicate_type == SLSA_PROVENANCE_V1:
        return _v1(predicate)
    if predicate_type == SLSA_PROVENANCE_V02:
        return _v02(predicate)
    return None


def vsa_facts(predicate_type: str, predicate: Mapping[str, Any]) -> VsaFacts | None:
    """VSA facts for a ``verification_summary/v1`` predicate, else ``None``."""
    if predicate_type != SLSA_VSA_V1:
        return None
    where = "predicate"
    verifier = get(predicate, "verifier", dict, where=where, required=True)
    levels = get(predicate, "verifiedLevels", list, where=where, required=False) or []
    if not all(isinstance(level, str) for level in levels):
        raise Rejected("invalid", "predicate.verifiedLevels: expected an array of strings")
    policy = get(predicate, "policy", dict, where=where, required=False) or {}
    return VsaFacts(
        verifier_id=get(verifier, "id", str, where=f"{where}.verifier", required=True),
        time_verified=get(predicate, "timeVerified", str, where=where, required=False),
        resource_uri=get(predicate, "resourceUri", str, where=where, required=False),
        verification_result=get(predicate, "verificationResult", str, where=where, required=True),
        verified_levels=list(levels),
        policy_uri=get(policy, "uri", str, where=f"{where}.policy", required=False),
    )


def _v1(predicate: Mapping[str, Any]) -> SlsaFacts:
    """SLSA v1: ``buildDefinition`` + ``runDetails``."""
    where = "predicate"
    definition = get(predicate, "buildDefinition", dict, where=where, required=True)
    run = get(predicate, "runDetails", dict, where=where, required=True)
    builder = get(run, "builder", dict, where=f"{where}.runDetails", required=True)
    metadata = get(run, "metadata", dict, where=f"{where}.runDetails", required=False) or {}
    where_def = f"{where}.buildDefinition"
    # NOTE: externalParameters is REQUIRED by SLSA v1, but real statements omit it (the
    # Rekor v2 conformance bundle); its absence only means no source facts from it.
    external = get(definition, "externalParameters", dict, where=where_def, required=False)
    workflow = get(
        external or {}, "workflow", dict, where=f"{where_def}.externalParameters", required=False
    )
    repository = ref = None
    if workflow is not None:
        w_where = f"{where_def}.externalParameters.workflow"
        repository = get(workflow, "repository", str, where=w_where, required=False)
        ref = get(workflow, "ref", str, where=w_where, required=False)
    dependency = _source_dependency(
        get(definition, "resolvedDependencies", list, where=where_def, required=False) or [],
        repository,
    )
    commit = None
    if dependency is not None:
        dep_repo, dep_ref, commit = dependency
        repository = repository or dep_repo
        ref = ref or dep_ref
    m_where = f"{where}.runDetails.metadata"
    return SlsaFacts(
        version="v1",
        build_type=get(definition, "buildType", str, where=where_def, required=True),
        builder_id=get(builder, "id", str, where=f"{where}.runDetails.builder", required=True),
        source_repository=repository,
        source_ref=ref,
        source_commit=commit,
        started_on=get(metadata, "startedOn", str, where=m_where, required=False),
        finished_on=get(metadata, "finishedOn", str, where=m_where, required=False),
    )


def _source_dependency(
    dependencies: list[Any], repository: str | None
) -> tuple[str, str | None, str] | None:
    """The resolved dependency pinning the source: ``(repository, ref, commit)``.

    Prefers the dependency whose URI names ``repository``; otherwise the first one with
    a ``gitCommit`` / ``sha1`` digest.
    """
    candidates: list[tuple[str, str | None, str]] = []
    for i, dep in enumerate(dependencies):
        where = f"predicate.buildDefinition.resolvedDependencies[{i}]"
        if not isinstance(dep, dict):
            raise Rejected("invalid", f"{where}: expected an object")
        uri = get(dep, "uri", str, where=where, required=False)
        digest = get(dep, "digest", dict, where=where, required=False) or {}
        commit = digest.get("gitCommit", digest.get("sha1"))
        if uri is None or commit is None:
            continue
        if not isinstance(commit, str):
            raise Rejected("invalid", f"{where}.digest.gitCommit: expected a string")
        dep_repo, dep_ref = split_git_uri(uri)
        candidates.append((dep_repo, dep_ref, commit))
    for candidate in candidates:
        if repository is not None and candidate[0] == repository:
            return candidate
    return candidates[0] if candidates else None


def _v02(predicate: Mapping[str, Any]) -> SlsaFacts:
    """SLSA v0.2: ``builder``, ``buildType``, ``invocation.configSource``, ``metadata``."""
    where = "predicate"
    builder = get(predicate, "builder", dict, where=where, required=True)
    invocation = get(predicate, "invocation", dict, where=where, required=False) or {}
    source = get(invocation, "configSource", dict, where=f"{where}.invocation", required=False)
    repository = ref = commit = None
    if source is not None:
        s_where = f"{where}.invocation.configSource"
        uri = get(source, "uri", str, where=s_where, required=False)
        if uri is not None:
            repository, ref = split_git_uri(uri)
        digest = get(source, "digest", dict, where=s_where, required=False) or {}
        commit = get(digest, "sha1", str, where=f"{s_where}.digest", required=False)
    metadata = get(predicate, "metadata", dict, where=where, required=False) or {}
    return SlsaFacts(
        version="v0.2",
        build_type=get(predicate, "buildType", str, where=where, required=True),
        builder_id=get(builder, "id", str, where=f"{where}.builder", required=True),
        source_repository=repository,
        source_ref=ref,
        source_commit=commit,
        started_on=get(metadata, "buildStartedOn", str, where=f"{where}.metadata", required=False),
        finished_on=get(
            metadata, "buildFinishedOn", str, where=f"{where}.metadata", required=False
        ),
    )


def split_git_uri(uri: str) -> tuple[str, str | None]:
    """``git+https://host/o/r@refs/tags/v1`` -> (``https://host/o/r``, ``refs/tags/v1``)."""
    if uri.startswith("git+"):
        uri = uri[len("git+") :]
    scheme, sep, rest = uri.partition("://")
    if sep and "@" in rest:
        path, _, ref = rest.rpartition("@")
        return f"{scheme}://{path}", ref or None
    return uri, None
