"""Mutual TLS under uvicorn: the verified client certificate's subject in the ASGI scope.

uvicorn (0.54) does not fill the ASGI TLS extension, so this h11 protocol does it: once the
handshake is done (``CERT_REQUIRED`` against ``tls_client_ca``, so the chain is verified by
``ssl``), every request of the connection gets ``scope["extensions"]["tls"]`` with
``client_cert_name`` (RFC 4514 style) and ``client_cert_common_name``. The API maps the
common name to roles with ``Settings.client_cert_roles``; unmapped names need a token.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]

_SHORT = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
}


def certificate_names(peercert: dict[str, Any]) -> tuple[str, str | None]:
    """``(RFC 4514-style subject, common name)`` of ``ssl.getpeercert()``'s result."""
    parts: list[str] = []
    common: str | None = None
    for rdn in reversed(peercert.get("subject", ())):
        for key, value in rdn:
            parts.append(f"{_SHORT.get(key, key)}={value}")
            if key == "commonName" and common is None:
                common = str(value)
    return ",".join(parts), common


class ClientCertH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus the ASGI TLS extension's client certificate fields."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Read the verified peer certificate and wrap the app for this connection."""
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        peercert = ssl_object.getpeercert() if ssl_object is not None else None
        if not peercert:
            return
        name, common = certificate_names(peercert)
        tls = {"client_cert_name": name, "client_cert_common_name": common}
        inner: ASGIApp = self.app

        async def with_tls(
            scope: MutableMapping[str, Any],
            receive: Callable[[], Awaitable[Any]],
            send: Callable[[Any], Awaitable[None]],
        ) -> None:
            scope.setdefault("extensions", {})["tls"] = dict(tls)
            await inner(scope, receive, send)

        self.app = with_tls
