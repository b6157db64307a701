"""Who is calling: an authenticated subject and its roles."""

from __future__ import annotations

from dataclasses import dataclass

ADMIN = "admin"
ROLES = ("ci", "admission", "rollout", "approver", "auditor", "admin")
"""Every role of contract §5."""


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a token's subject or a client certificate's subject."""

    subject: str
    roles: frozenset[str]
    method: str = "token"
    """How it was authenticated: ``token`` or ``mtls``."""

    def may(self, allowed: frozenset[str]) -> bool:
        """True when one of the caller's roles is allowed (``admin`` may do everything)."""
        return ADMIN in self.roles or not self.roles.isdisjoint(allowed)
