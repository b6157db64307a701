"""The releasegate error tree.

Every error raised by releasegate derives from :class:`EngineError` and carries a stable
snake_case ``code``. Adapters catch ``EngineError`` exactly once (the CLI in ``main``, the
API in one exception handler, admission by answering ``allowed: false``)::

    EngineError(code, message)
     +-- ConfigError          bad or insecure settings, missing files at start
     +-- InputError           a request, report or bundle that is malformed (HTTP 422 / exit 2)
     +-- BundleError          a policy bundle that cannot be built, loaded or verified
     +-- LogError             the decision log cannot be written or verified
     |    +-- SignatureError  a signature that does not verify
     |    +-- StoreError      the database refused a read or write (HTTP 503)
     +-- PolicyError          the policy engine could not produce a decision
          +-- PolicyCompileError
          +-- PolicyEvalError
          +-- EngineUnavailable

A ``pause`` or ``rollback`` is a Decision, never an exception; a ``PolicyError`` raised
during evaluation becomes a ``pause`` decision with reason ``engine_unavailable``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, NoReturn


@dataclass(frozen=True)
class FieldError:
    """One problem with one field of an input, located by a dotted path."""

    loc: str
    message: str

    def as_dict(self) -> dict[str, str]:
        """Render as the ``errors[]`` member of the API error body."""
        return {"loc": self.loc, "message": self.message}


@dataclass
class EngineError(Exception):
    """Base of every releasegate error."""

    message: str
    errors: Sequence[FieldError] = field(default_factory=tuple)
    code: str = "internal_error"

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    def diagnostics(self) -> str:
        """A human-readable explanation, one line per field problem."""
        lines = [self.message]
        lines.extend(f"  {e.loc}: {e.message}" for e in self.errors)
        return "\n".join(lines)

    def log_and_exit(self, logger: logging.Logger, *, exit_code: int) -> NoReturn:
        """Print the diagnostics and exit (the CLI's single catch point)."""
        logger.debug("error detail", exc_info=self)
        print(f"error: {self.diagnostics()}", file=sys.stderr)
        raise SystemExit(exit_code)


@dataclass
class ConfigError(EngineError):
    """Settings are invalid or insecure, or a required file is missing."""

    code: str = "config_error"


@dataclass
class InputError(EngineError):
    """A request or a piece of evidence is malformed."""

    code: str = "invalid_input"


@dataclass
class BundleError(EngineError):
    """A policy bundle cannot be built, loaded or verified."""

    code: str = "bundle_error"


@dataclass
class LogError(EngineError):
    """The decision log cannot be written or verified."""

    code: str = "log_error"


@dataclass
class SignatureError(LogError):
    """A signature does not verify."""

    code: str = "signature_error"


@dataclass
class StoreError(LogError):
    """The record store refused a read or a write."""

    code: str = "log_unavailable"


@dataclass
class PolicyError(EngineError):
    """The policy engine could not produce a decision."""

    code: str = "engine_unavailable"


@dataclass
class PolicyCompileError(PolicyError):
    """The policy does not compile."""

    code: str = "policy_compile_error"


@dataclass
class PolicyEvalError(PolicyError):
    """Evaluation failed or produced a malformed result."""

    code: str = "policy_eval_error"


@dataclass
class EngineUnavailable(PolicyError):
    """The engine is down, unreachable or timed out."""

    code: str = "engine_unavailable"


def map_errors(target: type[EngineError], what: str) -> ErrorMap:
    """Translate any non-releasegate exception raised inside the block into ``target``.

    ``with map_errors(StoreError, "cannot read approvals"): ...``: a releasegate error and
    anything that is not an ``Exception`` (cancellation, ``KeyboardInterrupt``) pass
    through unchanged; any other exception becomes ``target("<what>: <exc>")`` raised from
    it.
    """
    return ErrorMap(target, what)


class ErrorMap:
    """The context manager :func:`map_errors` returns.

    A class rather than a ``@contextmanager`` generator: the decision path enters a dozen
    of these, and a generator's context manager costs about 1.3 µs more each time here.
    """

    __slots__ = ("target", "what")

    def __init__(self, target: type[EngineError], what: str) -> None:
        self.target = target
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> Literal[False]:
        if exc is None or isinstance(exc, EngineError) or not isinstance(exc, Exception):
            return False
        raise self.target(f"{self.what}: {exc}") from exc
