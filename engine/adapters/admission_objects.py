"""Reading Kubernetes objects under admission: where each kind keeps its pod template, and
which images a pod spec names.

Pure functions over the decoded JSON; every problem raises :class:`InputError` naming the
field (``request.object.spec.template.spec.containers[1].image``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from engine.errors import FieldError, InputError
from engine.models.inputs import ImageFact

# NOTE(adapters): (group, kind) -> path of the pod spec inside the object. An Argo Rollout
# that uses ``spec.workloadRef`` instead of ``spec.template`` has no template of its own:
# its pods come from the referenced Deployment, which is admitted separately.
POD_SPEC_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "Pod"): ("spec",),
    ("", "ReplicationController"): ("spec", "template", "spec"),
    ("apps", "Deployment"): ("spec", "template", "spec"),
    ("apps", "ReplicaSet"): ("spec", "template", "spec"),
    ("apps", "StatefulSet"): ("spec", "template", "spec"),
    ("apps", "DaemonSet"): ("spec", "template", "spec"),
    ("batch", "Job"): ("spec", "template", "spec"),
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template", "spec"),
    ("argoproj.io", "Rollout"): ("spec", "template", "spec"),
}

# Kinds whose template may legitimately be absent.
OPTIONAL_TEMPLATE: frozenset[tuple[str, str]] = frozenset({("argoproj.io", "Rollout")})

ContainerKind = Literal["container", "init_container", "ephemeral_container"]
_CONTAINER_LISTS: tuple[tuple[str, ContainerKind], ...] = (
    ("initContainers", "init_container"),
    ("containers", "container"),
    ("ephemeralContainers", "ephemeral_container"),
)
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def _bad(loc: str, message: str) -> InputError:
    return InputError(f"malformed AdmissionReview: {loc}: {message}", [FieldError(loc, message)])


def image_digest(image: str) -> str | None:
    """The ``sha256:`` digest an image reference is pinned to, or None.

    ``repo@sha256:<64 hex>`` and ``repo:tag@sha256:<64 hex>`` are pinned (the runtime pulls
    by digest and ignores the tag). Anything else — a tag, no tag, another algorithm, an
    upper-case or short digest — is not.
    """
    _, sep, digest = image.rpartition("@")
    if not sep or not _DIGEST.match(digest):
        return None
    return digest


def image_repository(image: str) -> str:
    """The image reference without its digest (``ghcr.io/acme/app:1.2``)."""
    return image.rpartition("@")[0] if "@" in image else image


def supported(group: str, kind: str) -> bool:
    """Whether the adapter knows where this kind keeps its pod template."""
    return (group, kind) in POD_SPEC_PATHS


def pod_spec(group: str, kind: str, obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The pod spec of an object of a supported kind (None: a Rollout with ``workloadRef``)."""
    path = POD_SPEC_PATHS[(group, kind)]
    node: Any = obj
    loc = "request.object"
    for key in path:
        loc = f"{loc}.{key}"
        if not isinstance(node, Mapping):
            raise _bad(loc.rsplit(".", 1)[0], "must be an object")
        if key not in node or node[key] is None:
            if (group, kind) in OPTIONAL_TEMPLATE and key == "template":
                return None
            raise _bad(loc, f"missing; a {kind} keeps its pod spec at .{'.'.join(path)}")
        node = node[key]
    if not isinstance(node, Mapping):
        raise _bad(loc, "must be an object")
    return node


def images_in(spec: Mapping[str, Any], *, loc: str = "request.object.spec") -> list[ImageFact]:
    """Every container, init container and ephemeral container image of a pod spec."""
    images: list[ImageFact] = []
    for field, kind in _CONTAINER_LISTS:
        containers = spec.get(field)
        if containers is None:
            continue
        if not isinstance(containers, Sequence) or isinstance(containers, str):
            raise _bad(f"{loc}.{field}", "must be a list")
        for i, container in enumerate(containers):
            where = f"{loc}.{field}[{i}]"
            if not isinstance(container, Mapping):
                raise _bad(where, "must be an object")
            name = container.get("name")
            if not isinstance(name, str) or not name:
                raise _bad(f"{where}.name", "must be a non-empty string")
            # NOTE(adapters): `image` is optional in workload templates (a controller may fill
            # it in later); an absent image is not pinned.
            image = container.get("image", "")
            if image is None:
                image = ""
            if not isinstance(image, str):
                raise _bad(f"{where}.image", "must be a string")
            images.append(
                ImageFact(container=name, kind=kind, image=image, digest=image_digest(image))
            )
    return images


def labels_of(
    obj: Mapping[str, Any], *, loc: str = "request.object.metadata.labels"
) -> dict[str, str]:
    """``metadata.labels`` as a str→str dict (absent: empty)."""
    meta = obj.get("metadata")
    labels = meta.get("labels") if isinstance(meta, Mapping) else None
    if labels is None:
        return {}
    if not isinstance(labels, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise _bad(loc, "must map strings to strings")
    return dict(labels)


def template_labels(group: str, kind: str, obj: Mapping[str, Any]) -> dict[str, str]:
    """The pod template's labels (empty for a Pod or when absent)."""
    path = POD_SPEC_PATHS.get((group, kind), ())
    if len(path) < 2:
        return {}
    node: Any = obj
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, Mapping) else None
    if not isinstance(node, Mapping):
        return {}
    return labels_of(node, loc="request.object." + ".".join(path[:-1]) + ".metadata.labels")


__all__ = [
    "POD_SPEC_PATHS",
    "image_digest",
    "image_repository",
    "images_in",
    "labels_of",
    "pod_spec",
    "supported",
    "template_labels",
]
