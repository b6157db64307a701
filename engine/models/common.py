"""Shared field types and the strict base model."""

from __future__ import annotations

import enum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

Sha256Digest = Annotated[str, StringConstraints(pattern=r"^sha256:[0-9a-f]{64}$")]
"""``sha256:`` followed by 64 lowercase hex characters."""

NonEmptyStr = Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class StrictModel(BaseModel):
    """Frozen, rejects unknown fields: the base of every wire model."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Verdict(str, enum.Enum):
    """The three verdicts of the contract, in precedence order (see ``severity``)."""

    ALLOW = "allow"
    PAUSE = "pause"
    ROLLBACK = "rollback"

    @property
    def severity(self) -> int:
        """Higher is more severe: rollback > pause > allow."""
        return {"allow": 0, "pause": 1, "rollback": 2}[self.value]


class Stage(str, enum.Enum):
    """Where in the delivery flow the decision is asked for."""

    BUILD = "build"
    DEPLOY = "deploy"
    CANARY = "canary"
    PROMOTE = "promote"


class SectionStatus(str, enum.Enum):
    """How a section of the input document came to be.

    ``ok``: evidence present and processed; ``missing``: none supplied or configured;
    ``unavailable``: its source could not be reached; ``invalid``: it was supplied but bad.
    """

    OK = "ok"
    MISSING = "missing"
    UNAVAILABLE = "unavailable"
    INVALID = "invalid"
