"""The public key of the gateway's document signatures, as a JWK Set
(RFC 7517 §5) anyone can fetch without a token, so that a hospital can check
a document it received (``Bundle.signature``) with the key the gateway
publishes. The document operations themselves are FHIR routes."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

JWKS_PATH = "/documents/jwks.json"


async def jwks(request: Request) -> Response:
    signer = request.app.state.document_signer
    return Response(
        json.dumps({"keys": [signer.public_jwk()]}, separators=(",", ":")),
        media_type="application/jwk-set+json",
        headers={"Cache-Control": "public, max-age=3600"},
    )


ROUTES: list[BaseRoute] = [Route(JWKS_PATH, jwks, methods=["GET"])]
