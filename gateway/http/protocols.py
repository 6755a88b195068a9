"""The HTTP/1.1 protocols ``gateway serve`` runs uvicorn with: uvicorn's
own, but answering a request they cannot read with an OperationOutcome, as
the gateway answers every other request, where uvicorn sends a plain-text
400 ("Invalid HTTP request received.").

Such a request never reaches the app: a malformed request line or header,
or a URL longer than httptools parses (65,535 bytes; the app's own limit,
``Settings.max_url_bytes``, is lower and answered by
``gateway.http.middleware``). A URL past that length is refused as it
arrives, 414, rather than buffered whole and then refused.
"""

from __future__ import annotations

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway import fhirjson, outcomes
from gateway.errors import GatewayError, InvalidRequest, UriTooLong

MAX_PARSED_URL = 2**16 - 1
"""The longest URL ``httptools.parse_url`` reads."""


def unreadable() -> InvalidRequest:
    return InvalidRequest(
        "the request is not valid HTTP/1.1: its request line or a header is malformed, "
        "or its request line and headers are too long",
        code="GW-0307",
    )


def url_too_long() -> UriTooLong:
    return UriTooLong(
        f"the URL is over {MAX_PARSED_URL} bytes long (send a long search as "
        "POST [type]/_search, its parameters in the body)",
        code="GW-0304",
    )


def response(error: GatewayError) -> bytes:
    """The whole HTTP/1.1 response refusing a request with ``error``; the
    connection is closed after it."""
    body = fhirjson.dumps(outcomes.operation_outcome(error))
    head = (
        f"HTTP/1.1 {outcomes.status_line(outcomes.status_of(error))}\r\n"
        "content-type: application/fhir+json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class _UrlTooLong(Exception):
    """Raised from the parser's URL callback: the parser stops, and
    ``data_received`` answers with ``send_400_response``."""


class FhirHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (what ``http="auto"`` picks when
    httptools is installed, as ``uvicorn[standard]`` installs it)."""

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_PARSED_URL:
            raise _UrlTooLong

    def send_400_response(self, msg: str) -> None:
        too_long = len(getattr(self, "url", b"")) > MAX_PARSED_URL
        self.transport.write(response(url_too_long() if too_long else unreadable()))
        self.transport.close()


class FhirH11Protocol(H11Protocol):
    """uvicorn's h11 protocol; h11 refuses request lines and headers over
    16 KiB together, which is answered as unreadable."""

    def send_400_response(self, msg: str) -> None:
        self.transport.write(response(unreadable()))
        self.transport.close()
