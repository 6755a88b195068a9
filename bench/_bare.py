"""The bare app the gateway's read path is compared with.

A Starlette app with one route, ``GET /fhir/Patient/{id}``, answering from an
in-memory dict with the very bytes (and ETag/Last-Modified) the gateway
returned for each id. Served by uvicorn with the gateway's options (same
worker count, httptools/uvloop when installed, no access log, no server
header), so the difference between the two is what the gateway does per read:
routing through its routes, middleware and access checks, the access log and
the database query.

Run as ``python -m bench._bare --port N --workers N --data FILE``; the file is
``{"<id>": {"body": "<json text>", "headers": {...}}}``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

DATA_ENV = "BENCH_BARE_DATA"
FHIR_JSON = "application/fhir+json; charset=utf-8"


def create_app() -> Starlette:
    """The uvicorn factory each worker calls; reads the data file ``BENCH_BARE_DATA`` names."""
    raw = orjson.loads(Path(os.environ[DATA_ENV]).read_bytes())
    table: dict[str, tuple[bytes, dict[str, str]]] = {
        res_id: (entry["body"].encode("utf-8"), dict(entry["headers"]))
        for res_id, entry in raw.items()
    }

    async def read(request: Request) -> Response:
        found = table.get(request.path_params["res_id"])
        if found is None:
            return Response(status_code=404)
        body, headers = found
        return Response(body, media_type=FHIR_JSON, headers=headers)

    async def readyz(request: Request) -> Response:
        return Response(b'{"status":"ready"}', media_type=FHIR_JSON)

    return Starlette(
        routes=[Route("/fhir/Patient/{res_id}", read), Route("/readyz", readyz)],
    )


def main(argv: Sequence[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data", required=True)
    args = parser.parse_args(argv)
    os.environ[DATA_ENV] = str(Path(args.data).resolve())
    # The same options gateway.cli.cmd_serve passes to uvicorn.
    uvicorn.run(
        "bench._bare:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,
        access_log=False,
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
