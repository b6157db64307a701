"""A bounded LRU cache of verification results, with hit/miss counters for metrics."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from engine.models.common import SectionStatus
from engine.models.provenance import AttestationFact, ProvenanceSection

CacheKey = tuple[str, str, str]
"""(bundle digest, trust digest, artifact digest); all ``sha256:<hex>``."""


@dataclass(frozen=True)
class CacheStats:
    """Counters the service exports as metrics."""

    hits: int
    misses: int
    size: int
    max_size: int


class VerificationCache:
    """Thread-safe LRU map from :data:`CacheKey` to the fact it produced.

    Verification is a pure function of the key: the bundle bytes (canonical digest), the
    trust material (trusted root + configured keys) and the artifact digest; the time
    used to check certificates is the log/TSA time inside the bundle, not the clock.
    """

    def __init__(self, max_size: int = 1024) -> None:
        if max_size < 0:
            raise ValueError("max_size must be >= 0")
        self._max_size = max_size
        self._entries: OrderedDict[CacheKey, AttestationFact] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    def get(self, key: CacheKey) -> AttestationFact | None:
        """The cached fact for ``key`` (counted as a hit), or ``None`` (a miss)."""
        with self._lock:
            fact = self._entries.get(key)
            if fact is None:
                self._misses += 1
                return None
            self._entries.move_to_end(key)
            self._hits += 1
            return fact

    @property
    def max_size(self) -> int:
        """At most this many results are kept (0: none)."""
        return self._max_size

    def put(self, key: CacheKey, fact: AttestationFact) -> bool:
        """Store ``fact``, evicting the least recently used entry beyond ``max_size``;
        False when nothing is kept (``max_size`` 0)."""
        if self._max_size == 0:
            return False
        with self._lock:
            self._entries[key] = fact
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_size:
                self._entries.popitem(last=False)
        return True

    def stats(self) -> CacheStats:
        """A snapshot of the counters."""
        with self._lock:
            return CacheStats(
                hits=self._hits,
                misses=self._misses,
                size=len(self._entries),
                max_size=self._max_size,
            )


class SectionCache:
    """The ``ok`` provenance section made of a list of facts, found again by the facts'
    identity.

    On a warm request every fact is the verification cache's own object (see
    :meth:`engine.inputs.provenance.ProvenanceVerifier.evaluate`), so the section made of
    the same facts is returned as the same object, and the pipeline reuses that object's
    JSON and RFC 8785 encoding (:class:`engine.decision.SectionEncodings`). An entry holds
    its section, which holds its facts, so no key's object ids are reused while it is kept;
    a hit is checked fact by fact all the same. Facts made afresh (a cold request, a fact
    at another index) miss and are not kept unless ``keep`` says so. Thread-safe.
    """

    def __init__(self, max_size: int = 256) -> None:
        self._max_size = max_size
        self._entries: OrderedDict[tuple[int, ...], ProvenanceSection] = OrderedDict()
        self._lock = threading.Lock()

    def section(self, facts: Sequence[AttestationFact], *, keep: bool) -> ProvenanceSection:
        """The section of ``facts`` (status ``ok``), the kept one when these very facts
        made one before; a new section is kept when ``keep`` (all facts cached)."""
        key = tuple(map(id, facts))
        with self._lock:
            found = self._entries.get(key)
            if found is not None and all(
                a is b for a, b in zip(found.attestations, facts, strict=True)
            ):
                self._entries.move_to_end(key)
                return found
        section = ProvenanceSection(status=SectionStatus.OK, attestations=list(facts))
        if keep and self._max_size > 0:
            with self._lock:
                self._entries[key] = section
                while len(self._entries) > self._max_size:
                    self._entries.popitem(last=False)
        return section
