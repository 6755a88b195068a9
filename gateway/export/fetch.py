"""The client side of a bulk export, as an analytics team runs it against a
gateway (``gateway analytics export``): kick off, poll the status until the
manifest comes, download every file into a folder, with the manifest beside
them, which ``gateway analytics views`` and ``cohort`` read.

Plain Bulk Data v2 over HTTP: the same steps work against any server that
implements it, and any Bulk Data client works against the gateway.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from gateway import fhirjson
from gateway.keyfiles import open_secret

MANIFEST = "manifest.json"


class ExportClientError(Exception):
    """The server refused the export or it failed; the message says why."""


def _refusal(answer: httpx.Response) -> str:
    """What an error answer says: its OperationOutcome's diagnostics, else
    its status."""
    try:
        issues = answer.json().get("issue") or []
        said = "; ".join(str(issue.get("diagnostics", "")) for issue in issues)
    except ValueError:
        said = ""
    return f"{answer.status_code} {answer.reason_phrase}" + (f": {said}" if said else "")


def fetch_export(
    base_url: str,
    token: Callable[[], str],
    out: Path,
    params: Sequence[tuple[str, str]] = (),
    *,
    level: str = "",
    say: Callable[[str], None] = print,
    poll_s: float = 1.0,
    timeout_s: float = 3600.0,
    http: httpx.Client | None = None,
) -> dict[str, Any]:
    """Run an export of ``base_url`` (``level``: "" for the system,
    ``Patient/`` for every patient) into ``out``; its manifest. ``token``
    gives a current access token for each request."""
    client = http or httpx.Client(timeout=60.0)
    base = base_url.rstrip("/")

    def auth(**extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token()}", **extra}

    try:
        kick = client.get(
            f"{base}/{level}$export",
            params=list(params),
            headers=auth(Prefer="respond-async", Accept="application/fhir+json"),
        )
        if kick.status_code != 202:
            raise ExportClientError(f"the export was refused: {_refusal(kick)}")
        status_url = kick.headers["Content-Location"]
        say(f"export accepted: {status_url}")
        deadline = time.monotonic() + timeout_s
        while True:
            answer = client.get(status_url, headers=auth())
            if answer.status_code == 200:
                manifest: dict[str, Any] = answer.json()
                break
            if answer.status_code != 202:
                raise ExportClientError(f"the export failed: {_refusal(answer)}")
            if time.monotonic() > deadline:
                raise ExportClientError(f"the export did not finish in {timeout_s:.0f} s")
            say(f"  {answer.headers.get('X-Progress', 'in progress')}")
            wait = answer.headers.get("Retry-After", "")
            time.sleep(min(float(wait), 10.0) if wait.isdigit() else poll_s)
        out.mkdir(parents=True, exist_ok=True)
        for output in manifest["output"]:
            name = str(output["url"]).rsplit("/", 1)[1]
            with client.stream(
                "GET", output["url"], headers=auth(Accept="application/fhir+ndjson")
            ) as download:
                if download.status_code != 200:
                    download.read()
                    raise ExportClientError(f"{name} could not be fetched: {_refusal(download)}")
                # Personal data: readable by whoever fetched it only.
                with os.fdopen(open_secret(out / name), "wb") as file:
                    for chunk in download.iter_bytes():
                        file.write(chunk)
            say(f"  {name}: {output['count']:,} resources")
        with os.fdopen(open_secret(out / MANIFEST), "wb") as file:
            file.write(fhirjson.dumps(manifest))
        return manifest
    finally:
        if http is None:
            client.close()
