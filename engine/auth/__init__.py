"""Authentication: bearer tokens stored hashed, principals, failed-attempt rate limiting."""

from __future__ import annotations

from engine.auth.principal import ADMIN, Principal
from engine.auth.ratelimit import FailureLimiter
from engine.auth.tokens import ROLES, TOKEN_PREFIX, TokenInfo, TokenStore, hash_token

__all__ = [
    "ADMIN",
    "ROLES",
    "TOKEN_PREFIX",
    "FailureLimiter",
    "Principal",
    "TokenInfo",
    "TokenStore",
    "hash_token",
]
