"""The public key of the gateway's document signatures, as a JWK Set
(RFC 7517 §5) anyone can fetch without a token, so that a hospital can check
a document it received (``Bundle.signature``) with the key the gateway
publishes. The document operations themselves are FHIR routes."""

from __future__ import annotations

import json

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

JWKS_PATH = "/documents/jwks.json"


async def jwks(request: Request) -> Response:
    """Every node's key (``gateway.documents.keys``), not only this one's: the
    document checked may have been built by another node."""
    keys = await run_in_threadpool(request.app.state.document_keys.keys)
    return Response(
        json.dumps({"keys": keys}, separators=(",", ":")),
        media_type="application/jwk-set+json",
        # Short enough that a verifier holding the set soon sees a node's
        # new key; most fetch the set again on meeting a kid they lack.
        headers={"Cache-Control": "public, max-age=300"},
    )


ROUTES: list[BaseRoute] = [Route(JWKS_PATH, jwks, methods=["GET"])]
