"""De-duplicate raw findings across reports, scanners and aliases into facts.

Two raw findings are the same fact when they name the same package (name, or the name in
its purl; case-insensitive, ``:`` read as ``/``), the same installed version (a leading
``v`` before a digit ignored) and share at least one vulnerability id or alias. Grouping is
transitive (union-find), so ``CVE-x`` from Trivy, ``GHSA-y`` (alias ``CVE-x``) from Grype
and ``RUSTSEC-z`` (aliases both) from OSV end as one fact.

The fact's ``id`` is its smallest CVE id if it has one, else the first id seen; the other
ids become ``aliases``. Severity and score are the highest given; fixed versions, sources
and aliases are united. A fact is suppressed if any report suppressed it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from engine.inputs.scans.normalize import (
    SEVERITIES,
    SEVERITY_RANK,
    RawFinding,
    max_severity,
    parse_purl,
)
from engine.models.vulnerabilities import Severity, VulnerabilityFact


def _name_key(finding: RawFinding) -> str:
    name = finding.package_name
    if name is None:
        parsed = parse_purl(finding.purl)
        name = parsed.name if parsed else ""
    return name.lower().replace(":", "/")


def _version_key(finding: RawFinding) -> str:
    version = finding.installed_version or ""
    if version[:1] in ("v", "V") and version[1:2].isdigit():
        return version[1:]
    return version


def _unique(values: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for value in values:
        key = value.upper()
        if key not in seen:
            seen.add(key)
            out.append(value)
    return out


@dataclass
class MergedFinding:
    """A fact under construction (mutable until OpenVEX has been applied)."""

    ids: list[str]
    severity: Severity = "UNKNOWN"
    cvss_score: float | None = None
    cvss_vector: str | None = None
    package_name: str | None = None
    purl: str | None = None
    ecosystem: str | None = None
    installed_version: str | None = None
    fixed_versions: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    vex_status: str | None = None
    vex_justification: str | None = None
    suppressed: bool = False
    suppressed_by: str | None = None

    def add(self, raw: RawFinding) -> None:
        """Fold one more raw finding of the same group into this one."""
        self.ids = _unique([*self.ids, raw.id, *raw.aliases])
        self.severity = max_severity(self.severity, raw.severity)
        if raw.cvss_score is not None and (
            self.cvss_score is None or raw.cvss_score > self.cvss_score
        ):
            self.cvss_score, self.cvss_vector = raw.cvss_score, raw.cvss_vector
        self.package_name = self.package_name or raw.package_name
        self.purl = self.purl or raw.purl
        self.ecosystem = self.ecosystem or raw.ecosystem
        self.installed_version = self.installed_version or raw.installed_version
        self.fixed_versions = list(dict.fromkeys([*self.fixed_versions, *raw.fixed_versions]))
        self.sources = list(dict.fromkeys([*self.sources, raw.source]))
        if raw.suppressed and not self.suppressed:
            self.suppressed, self.suppressed_by = True, raw.suppressed_by
            self.vex_status, self.vex_justification = raw.vex_status, raw.vex_justification
        elif not self.suppressed and self.vex_status is None and raw.vex_status is not None:
            self.vex_status, self.vex_justification = raw.vex_status, raw.vex_justification

    @property
    def primary_id(self) -> str:
        """The smallest CVE id, else the first id seen."""
        cves = sorted(i for i in self.ids if i.upper().startswith("CVE-"))
        return cves[0] if cves else self.ids[0]

    def to_fact(self) -> VulnerabilityFact:
        """Freeze into the model the policy reads."""
        primary = self.primary_id
        return VulnerabilityFact(
            id=primary,
            aliases=sorted(i for i in self.ids if i != primary),
            severity=self.severity,
            cvss_score=self.cvss_score,
            cvss_vector=self.cvss_vector,
            package_name=self.package_name,
            purl=self.purl,
            ecosystem=self.ecosystem,
            installed_version=self.installed_version,
            fixed_versions=self.fixed_versions,
            fix_available=bool(self.fixed_versions),
            sources=self.sources,
            vex_status=self.vex_status,
            vex_justification=self.vex_justification,
            suppressed=self.suppressed,
            suppressed_by=self.suppressed_by,
        )


def merge_findings(raw: Sequence[RawFinding]) -> list[MergedFinding]:
    """Group raw findings that are the same (vulnerability, package, version), in order."""
    parent = list(range(len(raw)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_with_key: dict[tuple[str, str, str], int] = {}
    for index, finding in enumerate(raw):
        package = (_name_key(finding), _version_key(finding))
        for vuln_id in (finding.id, *finding.aliases):
            key = (*package, vuln_id.upper())
            other = first_with_key.setdefault(key, index)
            if other != index:
                a, b = find(other), find(index)
                parent[max(a, b)] = min(a, b)
    groups: dict[int, MergedFinding] = {}
    for index, finding in enumerate(raw):
        group = groups.setdefault(find(index), MergedFinding(ids=[finding.id]))
        group.add(finding)
    return list(groups.values())


def count_by_severity(facts: Iterable[VulnerabilityFact]) -> dict[str, int]:
    """``{severity: n}`` with every severity present (zeros included)."""
    counts: dict[str, int] = dict.fromkeys(SEVERITIES, 0)
    for fact in facts:
        counts[fact.severity] += 1
    return counts


def sort_facts(facts: list[VulnerabilityFact]) -> list[VulnerabilityFact]:
    """Most severe first, then by id, package and version (stable output)."""
    return sorted(
        facts,
        key=lambda f: (
            -SEVERITY_RANK[f.severity],
            f.id,
            f.package_name or "",
            f.installed_version or "",
        ),
    )
