"""Bearer tokens: random secrets shown once, stored only as SHA-256 hashes.

A token is ``rgt_`` followed by 32 random bytes, base64url (``secrets.token_urlsafe``). The
store keeps ``sha256(token)`` with the subject, roles, creation time and revocation time;
the token itself is never written anywhere. A token's id (its hash's first 16 hex digits)
names it in ``token list`` and ``token revoke``.

A service keeps the tokens it authenticated for ``cache_ttl_s`` seconds (default 5; 0 turns
the cache off), so a busy caller costs one database read per TTL instead of one per request.
A revocation made through the same store takes effect at once; one made by another process
(``releasegate token revoke`` while the service runs) within ``cache_ttl_s``. Only live
tokens are cached: an unknown or revoked token is looked up every time (and rate-limited).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Column, MetaData, String, Table, Text, bindparam, insert, select, update

from engine.auth.principal import ROLES
from engine.auth.sql import make_engine
from engine.errors import InputError, StoreError, map_errors
from engine.refresh import RefreshAhead

TOKEN_PREFIX = "rgt_"

metadata = MetaData()

tokens_table = Table(
    "auth_tokens",
    metadata,
    Column("token_id", String(16), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("subject", String(1024), nullable=False),
    Column("roles", Text, nullable=False),
    Column("created", String(32), nullable=False),
    Column("revoked", String(32), nullable=True),
)


_BY_HASH = select(tokens_table).where(tokens_table.c.token_hash == bindparam("token_hash"))


def _well_formed(token: str) -> bool:
    return token.startswith(TOKEN_PREFIX) and len(token) <= 256


def hash_token(token: str) -> str:
    """Hex SHA-256 of the token text."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class TokenInfo:
    """What the store knows about a token (never the token)."""

    token_id: str
    subject: str
    roles: frozenset[str]
    created: str
    revoked: str | None

    def to_json(self) -> dict[str, object]:
        """For ``token list --format json``."""
        return {
            "token_id": self.token_id,
            "subject": self.subject,
            "roles": sorted(self.roles),
            "created": self.created,
            "revoked": self.revoked,
        }


def check_roles(roles: list[str]) -> frozenset[str]:
    """Refuse unknown or missing roles."""
    if not roles:
        raise InputError("--role: at least one role is required")
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise InputError(f"--role: unknown role {unknown[0]!r} (one of {', '.join(ROLES)})")
    return frozenset(roles)


class TokenStore:
    """Token hashes in the service database (table ``auth_tokens``)."""

    def __init__(
        self,
        url: str,
        *,
        cache_ttl_s: float = 0.0,
        cache_size: int = 1024,
        refresh_ahead: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        with map_errors(StoreError, "cannot open the token store"):
            self._engine = make_engine(url)
            metadata.create_all(self._engine)
        self._cache_ttl_s = cache_ttl_s
        self._cache_size = cache_size
        self._cache: OrderedDict[str, tuple[TokenInfo, float]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._clock = clock
        # In the second half of its lifetime a cached token is read again in the background
        # (engine/refresh.py); it still expires at its TTL, so a revocation is seen as soon.
        self._refresher = RefreshAhead("token-refresh") if refresh_ahead else None

    def close(self) -> None:
        """Release the connections."""
        if self._refresher is not None:
            self._refresher.close()
        self._engine.dispose()

    def create(self, subject: str, roles: list[str]) -> tuple[str, TokenInfo]:
        """A new token for ``subject``; returns the token (shown once) and its info."""
        if not subject.strip():
            raise InputError("--subject: must not be empty")
        checked = check_roles(roles)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        digest = hash_token(token)
        info = TokenInfo(digest[:16], subject, checked, _now(), None)
        row = {
            "token_id": info.token_id,
            "token_hash": digest,
            "subject": subject,
            "roles": json.dumps(sorted(checked)),
            "created": info.created,
            "revoked": None,
        }
        with map_errors(StoreError, "cannot store the token"), self._engine.begin() as conn:
            conn.execute(insert(tokens_table).values(**row))
        return token, info

    def authenticate(self, token: str) -> TokenInfo | None:
        """The live token's info, or None (unknown, malformed or revoked)."""
        if not _well_formed(token):
            return None
        digest = hash_token(token)
        cached = self._cached(digest)
        if cached is not None:
            return cached
        info = self._read(digest)
        if info is not None:
            self._remember(digest, info)
        return info

    def _read(self, digest: str) -> TokenInfo | None:
        """The live token with this hash from the database (None: unknown or revoked)."""
        with map_errors(StoreError, "cannot read the token store"), self._engine.connect() as conn:
            row = conn.execute(_BY_HASH, {"token_hash": digest}).mappings().first()
        # NOTE: the lookup is by hash; the compare is constant-time anyway, so that nothing
        # about a near-miss leaks through timing even if the index lookup changes.
        if row is None or not hmac.compare_digest(str(row["token_hash"]), digest):
            return None
        info = _info(row)
        return None if info.revoked else info

    def _refresh(self, digest: str) -> None:
        info = self._read(digest)
        with self._cache_lock:
            if info is None:
                self._cache.pop(digest, None)
            elif digest in self._cache:  # not evicted meanwhile
                self._cache[digest] = (info, self._clock() + self._cache_ttl_s)

    def cached(self, token: str) -> TokenInfo | None:
        """The info of a live token this store authenticated within the TTL; None when it
        must be read (never reads the database, so it may run on an event loop)."""
        return self._cached(hash_token(token)) if _well_formed(token) else None

    def _cached(self, digest: str) -> TokenInfo | None:
        if self._cache_ttl_s <= 0:
            return None
        now = self._clock()
        with self._cache_lock:
            entry = self._cache.get(digest)
            if entry is None:
                return None
            info, expires = entry
            if expires <= now:
                del self._cache[digest]
                return None
            self._cache.move_to_end(digest)
        if self._refresher is not None and expires - now < self._cache_ttl_s / 2:
            self._refresher.schedule(digest, functools.partial(self._refresh, digest))
        return info

    def _remember(self, digest: str, info: TokenInfo) -> None:
        if self._cache_ttl_s <= 0:
            return
        with self._cache_lock:
            self._cache[digest] = (info, self._clock() + self._cache_ttl_s)
            self._cache.move_to_end(digest)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _forget(self, token_id: str) -> None:
        with self._cache_lock:
            for digest in [d for d, (i, _) in self._cache.items() if i.token_id == token_id]:
                del self._cache[digest]

    def list(self) -> list[TokenInfo]:
        """Every token, oldest first."""
        stmt = select(tokens_table).order_by(tokens_table.c.created, tokens_table.c.token_id)
        with map_errors(StoreError, "cannot read the token store"), self._engine.connect() as conn:
            return [_info(row) for row in conn.execute(stmt).mappings()]

    def revoke(self, token_id: str) -> TokenInfo:
        """Mark a token revoked (idempotent); ``InputError`` if there is no such token."""
        table = tokens_table
        with map_errors(StoreError, "cannot update the token store"), self._engine.begin() as conn:
            row = conn.execute(select(table).where(table.c.token_id == token_id)).mappings().first()
            if row is None:
                raise InputError(f"token id {token_id!r}: no such token")
            if row["revoked"] is None:
                conn.execute(
                    update(table).where(table.c.token_id == token_id).values(revoked=_now())
                )
            row = conn.execute(select(table).where(table.c.token_id == token_id)).mappings().one()
        self._forget(token_id)
        return _info(row)

    def count_active(self) -> int:
        """How many tokens are not revoked."""
        return sum(1 for t in self.list() if t.revoked is None)


def _info(row: object) -> TokenInfo:
    r = dict(row)  # type: ignore[call-overload]
    return TokenInfo(
        token_id=str(r["token_id"]),
        subject=str(r["subject"]),
        roles=frozenset(json.loads(r["roles"])),
        created=str(r["created"]),
        revoked=None if r["revoked"] is None else str(r["revoked"]),
    )
