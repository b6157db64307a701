"""Shared field types and the strict base model."""

from __future__ import annotations

import enum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

Sha256Digest = Annotated[str, StringConstraints(pattern=r"^sha256:[0-9a-f]{64}$")]
"""``sha256:`` followed by 64 lowercase hex characters."""

NonEmptyStr = Annotated[str, StringConstraints(min_length=1, max_length=1024)]

NS_QUANTUM = 1024
"""Nanosecond timestamps are multiples of 1024 ns (about 1 µs).

NOTE(lead): RFC 8785 treats every JSON number as an IEEE 754 double. A nanosecond timestamp
(about 1.8e18) is above 2**53, so it survives canonicalization only when the double it
denotes is exactly that integer; every multiple of 1024 below 2**62 (the year 2116) is. JCS
then writes the double's shortest digits (``...901400`` for ``...901376``), which parse back
to the same double and so to the same integer. Quantizing keeps ``now_ns`` an integer for
Rego's time built-ins and the canonical input digest exact."""


def quantize_ns(value: int) -> int:
    """Round a nanosecond timestamp down to a multiple of :data:`NS_QUANTUM`."""
    return value - (value % NS_QUANTUM)


TimestampNs = Annotated[int, Field(ge=0, lt=2**62), AfterValidator(quantize_ns)]
"""Nanoseconds since the Unix epoch, quantized (see :data:`NS_QUANTUM`)."""


class StrictModel(BaseModel):
    """Frozen, rejects unknown fields: the base of every wire model."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Verdict(enum.StrEnum):
    """The three verdicts of the contract, in precedence order (see ``severity``)."""

    ALLOW = "allow"
    PAUSE = "pause"
    ROLLBACK = "rollback"

    @property
    def severity(self) -> int:
        """Higher is more severe: rollback > pause > allow."""
        return {"allow": 0, "pause": 1, "rollback": 2}[self.value]


class Stage(enum.StrEnum):
    """Where in the delivery flow the decision is asked for."""

    BUILD = "build"
    DEPLOY = "deploy"
    CANARY = "canary"
    PROMOTE = "promote"


class SectionStatus(enum.StrEnum):
    """How a section of the input document came to be.

    ``ok``: evidence present and processed; ``missing``: none supplied or configured;
    ``unavailable``: its source could not be reached; ``invalid``: it was supplied but bad.
    """

    OK = "ok"
    MISSING = "missing"
    UNAVAILABLE = "unavailable"
    INVALID = "invalid"
