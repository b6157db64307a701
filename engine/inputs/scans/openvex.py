"""OpenVEX documents (v0.2.0; v0.0.x string forms accepted), applied as suppressions.

A statement covers a finding when:

1. the statement's vulnerability (``name``, ``@id`` or any of its ``aliases``) equals the
   finding's id or one of its aliases (case-insensitive), and
2. a product covers the finding's purl: one of the product's ``subcomponents`` if it lists
   any, else the product itself (``identifiers.purl`` or a purl ``@id``). Qualifiers are
   ignored; a version in the VEX purl must equal the finding's. A finding without a purl
   is never covered (fail closed).

Of all statements covering a finding, the latest (statement ``timestamp``, else the
document's; ties: the later one given) decides. ``not_affected`` and ``fixed`` suppress;
``affected`` and ``under_investigation`` are recorded in ``vex_status`` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from engine.inputs.scans.access import Node
from engine.inputs.scans.normalize import ParsedReport, Purl, parse_purl, purl_matches

STATUSES: Final = frozenset({"not_affected", "affected", "fixed", "under_investigation"})
SUPPRESSING_STATUSES: Final = frozenset({"not_affected", "fixed"})
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class VexScope:
    """One product of a statement: the purls it covers."""

    purls: tuple[Purl, ...]


@dataclass(frozen=True)
class VexStatement:
    """One OpenVEX statement, ready to match findings."""

    label: str
    """``openvex:<document @id or evidence.scans[i]>#<statement index>``."""
    ids: frozenset[str]
    """Upper-cased vulnerability name, ``@id`` and aliases."""
    scopes: tuple[VexScope, ...]
    status: str
    justification: str | None
    timestamp: datetime
    order: tuple[int, int]

    def covers(self, ids: set[str], purl: Purl | None) -> bool:
        """Does this statement speak about a finding with these ids and this purl?"""
        if purl is None or self.ids.isdisjoint(ids):
            return False
        return any(purl_matches(p, purl) for scope in self.scopes for p in scope.purls)

    @property
    def suppresses(self) -> bool:
        """True for ``not_affected`` and ``fixed``."""
        return self.status in SUPPRESSING_STATUSES


def _timestamp(node: Node, default: datetime) -> datetime:
    text = node.opt_str()
    if text is None:
        return default
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        node.fail(f"not an RFC 3339 timestamp: {text[:40]!r}")
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _purl_of(node: Node) -> Purl | None:
    if isinstance(node.value, str):  # v0.0.x: products are purl strings
        return parse_purl(node.opt_str())
    node.require_obj()
    return parse_purl(node.child("identifiers").child("purl").opt_str()) or parse_purl(
        node.child("@id").opt_str()
    )


def _scope(product: Node) -> VexScope:
    subcomponents = [] if isinstance(product.value, str) else product.child("subcomponents").items()
    if subcomponents:
        purls = [_purl_of(sub) for sub in subcomponents]
    else:
        purls = [_purl_of(product)]
    return VexScope(tuple(p for p in purls if p is not None))


def _ids(vulnerability: Node) -> frozenset[str]:
    if isinstance(vulnerability.value, str):  # v0.0.x: "vulnerability": "CVE-..."
        return frozenset({vulnerability.req_str().upper()})
    vulnerability.require_obj()
    ids = {
        text.upper()
        for text in (vulnerability.child("name").opt_str(), vulnerability.child("@id").opt_str())
        if text
    }
    ids.update(alias.upper() for alias in vulnerability.child("aliases").str_items())
    if not ids:
        vulnerability.fail("names no vulnerability (no name, @id or aliases)")
    return frozenset(ids)


def parse_openvex(root: Node, *, doc_index: int) -> tuple[ParsedReport, list[VexStatement]]:
    """Read an OpenVEX document into statements (and a report fact describing it)."""
    root.require_obj()
    context = root.child("@context").opt_str() or ""
    if not context.startswith("https://openvex.dev/ns"):
        root.child("@context").fail("not an OpenVEX context (https://openvex.dev/ns/...)")
    doc_id = root.child("@id").opt_str()
    doc_time = _timestamp(root.child("timestamp"), _EPOCH)
    report = ParsedReport(
        format="openvex",
        scanner=root.child("tooling").opt_str() or root.child("author").opt_str(),
        scanned_at=root.child("timestamp").opt_str(),
    )
    name = doc_id or root.report
    statements: list[VexStatement] = []
    for index, statement in enumerate(root.child("statements").require_items()):
        statement.require_obj()
        status_node = statement.child("status")
        status = status_node.req_str()
        if status not in STATUSES:
            status_node.fail(f"unknown status {status!r} (expected one of {sorted(STATUSES)})")
        products = statement.child("products").items()
        if not products:
            # NOTE: a statement with no product would silence the CVE in every package.
            statement.child("products").fail("is required: a statement must name its products")
        statements.append(
            VexStatement(
                label=f"openvex:{name}#{index}",
                ids=_ids(statement.child("vulnerability")),
                scopes=tuple(_scope(product) for product in products),
                status=status,
                justification=statement.child("justification").opt_str(),
                timestamp=_timestamp(statement.child("timestamp"), doc_time),
                order=(doc_index, index),
            )
        )
    return report, statements


class VexIndex:
    """Statements indexed by vulnerability id, so matching costs O(statements per id)."""

    def __init__(self, statements: list[VexStatement]) -> None:
        self._by_id: dict[str, list[VexStatement]] = {}
        for statement in statements:
            for vuln_id in statement.ids:
                self._by_id.setdefault(vuln_id, []).append(statement)

    def __bool__(self) -> bool:
        return bool(self._by_id)

    def select(self, ids: set[str], purl: Purl | None) -> VexStatement | None:
        """The statement that decides for a finding: the latest of those covering it."""
        if purl is None:
            return None
        candidates = {id(s): s for i in ids for s in self._by_id.get(i, ())}
        covering = [s for s in candidates.values() if s.covers(ids, purl)]
        if not covering:
            return None
        return max(covering, key=lambda s: (s.timestamp, s.order))
