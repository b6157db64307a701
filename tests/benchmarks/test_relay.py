"""``python -m benchmarks.relay``: the least front of an admission, against a real OPA.

It must do, per request, what any front that logs before it answers must do: ask OPA, then
seal and durably commit a record, then answer from OPA's verdict.
"""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.procs import BareOpa, start_opa, start_relay
from benchmarks.scenarios import opa_input_body, request_body
from engine.log.decision_log import DecisionLog, open_decision_log
from engine.log.verify import verify_export
from tests.log.helpers import input_doc, make_decision


@pytest.fixture(scope="module")
def opa(tmp_path_factory: pytest.TempPathFactory, opa_binary: Path) -> Iterator[BareOpa]:
    """OPA on the signed bundle, as the benchmark's baselines run it."""
    bare = start_opa(tmp_path_factory.mktemp("opa"), console_log=False, unix_socket=True)
    yield bare
    bare.stop()


@pytest.fixture
def record_file(tmp_path: Path) -> Path:
    """A signed record as the service logs it, read back as an auditor gets it."""
    log = open_decision_log(tmp_path / "source")
    try:
        decision = log.append(
            make_decision(), input_document=input_doc(), caller="kube", adapter="admission"
        )
        stored = log.get(decision.decision_id)
        assert stored is not None
    finally:
        log.close()
    path = tmp_path / "record.json"
    path.write_text(stored.model_dump_json())
    return path


def _opa_input(tmp_path: Path, **release: str) -> Path:
    """Scenario 1's input document (an allow in staging), with ``release`` fields changed."""
    document = json.loads(opa_input_body(request_body(), tmp_path))
    document["input"]["release"].update(release)
    path = tmp_path / f"opa-input-{len(release)}.json"
    path.write_text(json.dumps(document))
    return path


def _exchange(sock: socket.socket, body: bytes) -> tuple[bytes, bytes]:
    """One request on a kept-alive connection; (status line, body)."""
    sock.sendall(
        b"POST / HTTP/1.1\r\nHost: relay\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(rest) < length:
        rest += sock.recv(65536)
    return head.split(b"\r\n")[0], rest


def _records(state: Path) -> list[dict[str, object]]:
    log: DecisionLog = open_decision_log(state)
    try:
        out = io.StringIO()
        log.export(out)
        lines = out.getvalue().splitlines()
        verify_export(lines, log.keyring)
    finally:
        log.close()
    return [r for r in map(json.loads, lines) if "decision_id" in r]


def test_each_answer_follows_opa_and_a_signed_durable_record(
    opa: BareOpa, record_file: Path, tmp_path: Path
) -> None:
    relay = start_relay(tmp_path, opa=opa, opa_input=_opa_input(tmp_path), record=record_file)
    try:
        with socket.create_connection(("127.0.0.1", relay.port)) as first:
            answers = [_exchange(first, b'{"review": %d}' % i) for i in range(3)]
        with socket.create_connection(("127.0.0.1", relay.port)) as second:
            answers.append(_exchange(second, b""))
    finally:
        relay.stop()
    assert answers == [(b"HTTP/1.1 200 OK", b'{"allowed":true}')] * 4
    # One verified, signed copy of the record per answer, each with a fresh id.
    copies = _records(relay.state_dir)
    source = json.loads(record_file.read_text())
    assert len(copies) == 4 and len({c["decision_id"] for c in copies}) == 4
    assert all(c["input"] == source["input"] and c["signature"] for c in copies)


def test_an_opa_verdict_other_than_allow_is_not_admitted(
    opa: BareOpa, record_file: Path, tmp_path: Path
) -> None:
    # In prod the policy needs an approval the input does not have: a pause.
    paused = _opa_input(tmp_path, environment="prod")
    relay = start_relay(tmp_path, opa=opa, opa_input=paused, record=record_file)
    try:
        with socket.create_connection(("127.0.0.1", relay.port)) as sock:
            assert _exchange(sock, b"{}") == (b"HTTP/1.1 200 OK", b'{"allowed":false}')
    finally:
        relay.stop()


def test_an_unreachable_opa_is_a_500_and_nothing_is_recorded(
    record_file: Path, tmp_path: Path, opa_binary: Path
) -> None:
    gone = start_opa(tmp_path, console_log=False, unix_socket=True)
    gone.stop()
    relay = start_relay(tmp_path, opa=gone, opa_input=_opa_input(tmp_path), record=record_file)
    try:
        with socket.create_connection(("127.0.0.1", relay.port)) as sock:
            status, body = _exchange(sock, b"{}")
    finally:
        relay.stop()
    # OPA's socket went with it: the relay says so, and has recorded nothing.
    assert status == b"HTTP/1.1 500 Internal Server Error" and b"FileNotFoundError" in body
    assert _records(relay.state_dir) == []


def test_the_relay_needs_opa_on_a_unix_socket(record_file: Path, tmp_path: Path) -> None:
    tcp_only = BareOpa(process=None, port=1, log_path=tmp_path / "log")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unix socket"):
        start_relay(tmp_path, opa=tcp_only, opa_input=tmp_path / "in", record=record_file)
