"""What a completed export's status request answers: the Bulk Data
completion manifest (https://hl7.org/fhir/uv/bulkdata/export.html#response---complete-status),
its file links under the gateway's base."""

from __future__ import annotations

from typing import Any

from gateway.export.jobs import Job

STATUS_PATH = "$export-status"
FILE_PATH = "$export-file"


def status_url(base_url: str, job_id: str) -> str:
    return f"{base_url}/{STATUS_PATH}/{job_id}"


def manifest(job: Job, base_url: str) -> dict[str, Any]:
    """The manifest of the completed ``job``; every file needs the
    requester's access token (``requiresAccessToken``)."""
    return {
        "transactionTime": job.transaction_time,
        "request": job.request,
        "requiresAccessToken": True,
        "output": [
            {
                "type": f.res_type,
                "url": f"{base_url}/{FILE_PATH}/{job.id}/{f.name}",
                "count": f.count,
            }
            for f in job.output
        ],
        "error": [],
        # Said outright: every file is pseudonymised, with the project's key.
        "extension": {
            "urn:london-care-gateway:export-project": job.ask.project,
            "urn:london-care-gateway:pseudonymised": True,
        },
    }
