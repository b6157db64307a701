"""Authentication: principals, roles and failed-attempt rate limiting (stdlib only).

Token storage (SQLAlchemy) is :mod:`engine.auth.tokens`, imported where it is used so the
CLI's import path stays light.
"""

from __future__ import annotations

from engine.auth.principal import ADMIN, ROLES, Principal
from engine.auth.ratelimit import FailureLimiter

__all__ = ["ADMIN", "ROLES", "FailureLimiter", "Principal"]
