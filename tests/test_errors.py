"""``map_errors``: the translation boundary every store and parser goes through."""

from __future__ import annotations

import asyncio

import pytest

from engine.errors import InputError, StoreError, map_errors


def _read(fail: BaseException | None) -> str:
    with map_errors(StoreError, "cannot read approvals"):
        if fail is not None:
            raise fail
        return "rows"


def test_a_foreign_exception_becomes_the_target_raised_from_it() -> None:
    cause = OSError("disk I/O error")
    with pytest.raises(StoreError) as raised:
        _read(cause)
    assert str(raised.value) == "cannot read approvals: disk I/O error"
    assert raised.value.__cause__ is cause
    assert raised.value.__suppress_context__


@pytest.mark.parametrize(
    "passes",
    [
        InputError("body.release: field required"),  # already a releasegate error
        asyncio.CancelledError(),  # not an Exception: cancellation is never translated
        KeyboardInterrupt(),
    ],
)
def test_releasegate_errors_and_non_exceptions_pass_through(passes: BaseException) -> None:
    with pytest.raises(type(passes)) as raised:
        _read(passes)
    assert raised.value is passes


def test_the_block_returns_normally_without_an_error() -> None:
    assert _read(None) == "rows"
