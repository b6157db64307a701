"""Shared vocabulary of the scan parsers: severities, CVSS, package URLs, raw findings."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import unquote

from engine.models.vulnerabilities import Severity

SEVERITIES: Final[tuple[Severity, ...]] = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "NONE", "UNKNOWN")

SEVERITY_RANK: Final[dict[Severity, int]] = {
    "UNKNOWN": 0,
    "NONE": 1,
    "LOW": 2,
    "MEDIUM": 3,
    "HIGH": 4,
    "CRITICAL": 5,
}
"""Order used when merging: any known severity beats ``UNKNOWN``; the highest wins."""

_SEVERITY_WORDS: Final[dict[str, Severity]] = {
    "critical": "CRITICAL",
    "high": "HIGH",
    "important": "HIGH",
    "medium": "MEDIUM",
    "moderate": "MEDIUM",
    "low": "LOW",
    "negligible": "LOW",
    "none": "NONE",
    "info": "NONE",
    "informational": "NONE",
    "unknown": "UNKNOWN",
}


def severity_from_word(word: str | None) -> Severity:
    """Map a scanner's severity label (any case; GHSA ``MODERATE``, Grype ``Negligible``)."""
    if word is None:
        return "UNKNOWN"
    return _SEVERITY_WORDS.get(word.strip().lower(), "UNKNOWN")


def severity_from_score(score: float | None) -> Severity:
    """The CVSS v3 qualitative rating (also GitHub's ``security-severity`` convention)."""
    if score is None or not math.isfinite(score) or score < 0:
        return "UNKNOWN"
    if score >= 9.0:
        return "CRITICAL"
    if score >= 7.0:
        return "HIGH"
    if score >= 4.0:
        return "MEDIUM"
    if score > 0.0:
        return "LOW"
    return "NONE"


def max_severity(a: Severity, b: Severity) -> Severity:
    """The more severe of two severities (``UNKNOWN`` loses to any known one)."""
    return a if SEVERITY_RANK[a] >= SEVERITY_RANK[b] else b


# -- CVSS v3.x base score (FIRST CVSS v3.1 specification, section 7) ---------------------

_V3_WEIGHTS: Final[dict[str, dict[str, float]]] = {
    "AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2},
    "AC": {"L": 0.77, "H": 0.44},
    "UI": {"N": 0.85, "R": 0.62},
    "C": {"H": 0.56, "L": 0.22, "N": 0.0},
    "I": {"H": 0.56, "L": 0.22, "N": 0.0},
    "A": {"H": 0.56, "L": 0.22, "N": 0.0},
}
_V3_PR: Final[dict[str, dict[str, float]]] = {
    "U": {"N": 0.85, "L": 0.62, "H": 0.27},
    "C": {"N": 0.85, "L": 0.68, "H": 0.5},
}


def _roundup(value: float) -> float:
    scaled = round(value * 100_000)
    if scaled % 10_000 == 0:
        return scaled / 100_000.0
    return (math.floor(scaled / 10_000) + 1) / 10.0


def cvss3_base_score(vector: str) -> float | None:
    """The base score of a ``CVSS:3.0/...`` or ``CVSS:3.1/...`` vector, ``None`` if not one.

    CVSS v2 and v4 vectors are not scored here (``None``); callers fall back to the
    scanner's own severity.
    """
    parts = vector.strip().split("/")
    if not parts or parts[0] not in ("CVSS:3.0", "CVSS:3.1"):
        return None
    metrics: dict[str, str] = {}
    for part in parts[1:]:
        name, sep, value = part.partition(":")
        if not sep:
            return None
        metrics[name] = value
    try:
        scope = metrics["S"]
        pr = _V3_PR[scope][metrics["PR"]]
        av, ac, ui = (_V3_WEIGHTS[m][metrics[m]] for m in ("AV", "AC", "UI"))
        c, i, a = (_V3_WEIGHTS[m][metrics[m]] for m in ("C", "I", "A"))
    except KeyError:
        return None
    iss = 1 - (1 - c) * (1 - i) * (1 - a)
    if scope == "U":
        impact = 6.42 * iss
    else:
        impact = 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15
    exploitability = 8.22 * av * ac * pr * ui
    if impact <= 0:
        return 0.0
    if scope == "U":
        return _roundup(min(impact + exploitability, 10.0))
    return _roundup(min(1.08 * (impact + exploitability), 10.0))


# -- Package URLs ------------------------------------------------------------------------

_PURL_RE: Final = re.compile(
    r"^pkg:([A-Za-z.+-][A-Za-z0-9.+-]*)/([^?#]+?)(?:@([^?#@]*))?(?:[?#].*)?$"
)


@dataclass(frozen=True)
class Purl:
    """The parts of a package URL that identify a package (qualifiers ignored)."""

    type: str
    name: str
    """Namespace and name, percent-decoded, joined by ``/`` (``github.com/docker/distribution``)."""
    version: str | None

    @property
    def short_name(self) -> str:
        """The last path segment (the purl ``name``)."""
        return self.name.rsplit("/", 1)[-1]


def parse_purl(text: str | None) -> Purl | None:
    """Parse ``pkg:type/namespace/name@version?qualifiers#subpath``; ``None`` if not a purl."""
    if text is None:
        return None
    match = _PURL_RE.match(text.strip())
    if match is None:
        return None
    ptype, path, version = match.groups()
    name = "/".join(unquote(seg) for seg in path.strip("/").split("/") if seg)
    if not name:
        return None
    return Purl(type=ptype.lower(), name=name, version=unquote(version) if version else None)


def purl_matches(statement_purl: Purl, finding_purl: Purl) -> bool:
    """Does a VEX product/subcomponent purl cover a finding's purl? (qualifiers ignored)

    Type and name must be equal; a version in the VEX purl must equal the finding's.
    """
    if statement_purl.type != finding_purl.type:
        return False
    if statement_purl.name.lower() != finding_purl.name.lower():
        return False
    return statement_purl.version is None or statement_purl.version == finding_purl.version


_SHA256_RE: Final = re.compile(r"sha256:([0-9a-fA-F]{64})")


def find_sha256(text: str | None) -> str | None:
    """The ``sha256:<hex>`` digest named in ``text`` (a digest, ``repo@sha256:...``, a purl)."""
    if not text:
        return None
    match = _SHA256_RE.search(unquote(text))
    return f"sha256:{match.group(1).lower()}" if match else None


# -- Raw findings --------------------------------------------------------------------------


@dataclass
class RawFinding:
    """One vulnerability in one package as a single report states it (before de-duplication)."""

    id: str
    source: str
    aliases: list[str] = field(default_factory=list)
    severity: Severity = "UNKNOWN"
    cvss_score: float | None = None
    cvss_vector: str | None = None
    package_name: str | None = None
    purl: str | None = None
    ecosystem: str | None = None
    installed_version: str | None = None
    fixed_versions: list[str] = field(default_factory=list)
    vex_status: str | None = None
    vex_justification: str | None = None
    suppressed: bool = False
    suppressed_by: str | None = None

    def fill_package_from_purl(self) -> None:
        """Take name, version and ecosystem from the purl where the report gave none."""
        parsed = parse_purl(self.purl)
        if parsed is None:
            return
        self.package_name = self.package_name or parsed.name
        self.installed_version = self.installed_version or parsed.version
        self.ecosystem = parsed.type


def split_versions(text: str | None) -> list[str]:
    """Split Trivy's comma-separated ``FixedVersion`` (``"1.2.3, 1.3.1"``)."""
    if not text:
        return []
    return [part.strip() for part in text.split(",") if part.strip()]


def source_label(fmt: str, scanner: str | None, version: str | None) -> str:
    """How a finding names where it came from: ``trivy:trivy@0.58.1``."""
    name = (scanner or "unknown").strip().lower() or "unknown"
    return f"{fmt}:{name}@{version}" if version else f"{fmt}:{name}"


@dataclass
class ParsedReport:
    """What one parser read from one report: report-level facts and raw findings."""

    format: str
    scanner: str | None = None
    scanner_version: str | None = None
    scanned_at: str | None = None
    artifact_name: str | None = None
    artifact_digests: list[str] = field(default_factory=list)
    db: dict[str, str] = field(default_factory=dict)
    findings: list[RawFinding] = field(default_factory=list)

    def add_digest(self, text: str | None) -> None:
        """Record a sha256 digest the report names for its artifact (once)."""
        digest = find_sha256(text)
        if digest is not None and digest not in self.artifact_digests:
            self.artifact_digests.append(digest)
