"""The request's repository: the only way a request reads, searches, writes
or runs an operation on resources.

One is built per authenticated request from its verified token
(``gateway.http.deps``) and bound to that requester: its organisation and
kind, client, scopes, purpose and break-glass reason. Every method

1. checks the token's scopes for what it does (403 otherwise),
2. hands the work to ``gateway.interactions`` or ``gateway.operations`` with
   itself as the ``Acting`` party, so that every candidate resource is put to
   the consent engine (``gateway.access.control``) and every write is
   authored, checked and Provenanced as the requester's,
3. and adds what happened (the people touched, each decision, the versions
   written, the documents sent) to the request's audit entry: a write's
   entry is staged in the write's own transaction (``committing``;
   ``gateway.audit.staging``), and
   the HTTP layer makes durable, before any answer leaves, an entry for
   whatever else the request did.

Nothing below the HTTP layer takes a requester, a scope check or a consent
check on its own; they take a repository. The only other ``Acting`` party is
the gateway loading a source's records as that source
(``gateway.loading.source``). Medplum binds its repository to a login the
same way; HAPI FHIR wires its consent service in one place.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import anyio.to_thread

from conformance.registry import RESOURCES
from consent.model import SECONDARY_USE
from gateway import fhirjson
from gateway.access.control import AccessControl
from gateway.access.facts import person_of
from gateway.access.people import registered_practices
from gateway.access.purposes import require_access_report, require_compliance
from gateway.audit import report as audit_report
from gateway.audit import staging
from gateway.audit.events import Disclosures, request_event
from gateway.auth.enforce import authorize_search, includable
from gateway.auth.scopes import Permission
from gateway.auth.tokens import AccessGrant
from gateway.documents.assemble import Document
from gateway.errors import Forbidden, InvalidRequest, NotFound, StoreUnavailable
from gateway.export import jobs as exports
from gateway.export import runner as export_runner
from gateway.export.asking import COHORT_TYPE, parse_ask
from gateway.interactions import bundle as bundles
from gateway.interactions import history as histories
from gateway.interactions import read as reads
from gateway.interactions import search as searches
from gateway.interactions import write
from gateway.interactions.everything import everything_query
from gateway.interactions.patching import Patch
from gateway.interactions.provenance import Author
from gateway.interactions.types import ReturnPreference, supported_type
from gateway.operations import access_check as checks
from gateway.operations import documents
from gateway.operations import ingest as ingests
from gateway.operations import subscription_status as subscription_operations
from gateway.operations import validate as validation
from gateway.search.query import SearchQuery
from gateway.store import AsyncReader, Querier, Store, StoredVersion, UnitOfWork, budget

T = TypeVar("T")

_VERBS = {
    Permission.CREATE: "creating",
    Permission.READ: "reading",
    Permission.UPDATE: "updating",
    Permission.DELETE: "deleting",
    Permission.SEARCH: "searching",
}


async def _off_loop(work: Callable[[], T]) -> T:
    """Run blocking store work in the thread pool, off the event loop."""
    return await anyio.to_thread.run_sync(work)


class RequestLine(NamedTuple):
    """What the audit entry says of the request itself."""

    request_id: str
    method: str
    path: str
    query: str
    subtype: str  # its interaction (``gateway.audit.events.subtype_of``)


class Repository:
    """One requester's view of the resources, for one request. Not shared
    between requests: a Consent changed between two requests applies to the
    second."""

    def __init__(
        self,
        store: Store,
        reader: AsyncReader,
        grant: AccessGrant,
        disclosures: Disclosures,
        base_url: str,
        line: RequestLine,
        *,
        pushing: bool = False,
    ) -> None:
        """``pushing``: the requester is a source pushing its records
        (``$ingest``), which land at the ids the gateway's mappings derive
        from its own keys rather than at ids it chose."""
        self._store = store
        self._reader = reader
        self._grant = grant
        self._line = line
        self._pushing = pushing
        self.requester = grant.requester
        self.scopes = grant.scopes
        self._disclosures = disclosures
        self.base_url = base_url
        self._author = Author.of(grant.requester)

    def require_direct_care(self, res_type: str | None = None) -> None:
        """Refuse (403) a requester asking for secondary use (population
        health, planning, research): that is served by bulk export alone,
        decided and pseudonymised as a whole (PRODUCT.md section 4), never
        by the reads, searches and writes of direct care. The refusal names
        nothing: it is the same whatever the request names. One exception:
        an analytics organisation keeps its cohort definitions (``Group``,
        the type ``res_type`` an interaction is on) through the API, to
        export by them; they are its own, read by no one else."""
        if self.requester.purpose in SECONDARY_USE and res_type != COHORT_TYPE:
            raise Forbidden(
                f"{self.requester.purpose} (secondary use) is served by bulk export alone, "
                "not by this interaction",
                code="GW-0615",
            )

    def require_secondary_use(self) -> None:
        """Refuse (403) bulk export to a requester not asking for secondary
        use as an analytics organisation: direct care reads a person's
        record through the interactions, decided person by person."""
        if self.requester.purpose not in SECONDARY_USE or self.requester.kind != "analytics":
            raise Forbidden(
                "bulk export is for secondary use: a client of an analytics organisation "
                "asking for " + ", ".join(sorted(SECONDARY_USE)),
                code="GW-0616",
            )

    # -- Acting: what the interactions ask of the party they work for ----------

    @property
    def author(self) -> Author:
        return self._author

    def authorize(self, res_type: str, permission: str) -> None:
        self.allow(res_type, Permission(permission))

    def allow(self, res_type: str, permission: Permission) -> None:
        """Refuse (403) an interaction the token's scopes do not grant."""
        if not self.scopes.allows(res_type, permission):
            raise Forbidden(
                f"the access token's scopes ({self.scopes}) do not allow "
                f"{_VERBS[permission]} {res_type}",
                code="GW-0610",
            )

    def access(self, reader: Querier | None = None) -> AccessControl:
        """This request's consent decisions, from what ``reader`` (by default
        the store) reads; each decision is noted for the audit entry."""
        return AccessControl(
            reader or self._store, self.requester, on_decision=self._disclosures.add
        )

    def wrote(self, version: StoredVersion) -> None:
        """Note a version this request wrote, and whose record it is."""
        person = None
        if version.content is not None:
            person = person_of(fhirjson.loads(version.content))
        elif version.res_type == "Patient":
            person = version.res_id
        self._disclosures.wrote(
            f"{version.res_type}/{version.res_id}/_history/{version.version}", person
        )

    def may_assign_id(self, res_type: str, res_id: str) -> bool:
        """A client creates at an id of its choosing (update as create) only
        within its organisation's own ids, ``<ODS code>-<its id>``: anywhere
        else the answer could not be the same for an id where a hidden
        record stands and one where nothing does. A source's pushed records
        land at the ids the mappings derive from its own keys (keyed with the
        deployment's secret, named for the source), not at ids it chose: what
        stands there hidden is reconciled by the loader as for any source
        (``gateway.loading``)."""
        return self._pushing or res_id.startswith(self.requester.org_ods + "-")

    def committing(self, uow: UnitOfWork) -> None:
        """The request's audit entry so far, staged in the unit of work of
        the writes it names: they commit together or not at all (PRODUCT.md
        section 5). What the request does after it (the reads of a batch)
        goes into the entry the HTTP layer writes before the answer leaves;
        when there is nothing more, that entry is not written."""
        if not self._disclosures.written:
            return
        line = self._line
        record = request_event(
            recorded=fhirjson.instant(),
            subtype=self._disclosures.interaction or line.subtype,
            status=None,
            asker=self.requester,
            request_id=line.request_id,
            method=line.method,
            path=line.path,
            query=line.query,
            disclosures=self._disclosures,
        )
        staging.stage(uow, [record])
        self._disclosures.logged()

    def found_nothing(self) -> None:
        """Note that the answer, or an entry of it, found nothing to show:
        it waits out the not-found floor (``gateway.http.middleware``)."""
        self._disclosures.found_nothing = True

    # -- read and vread ----------------------------------------------------------

    async def read(self, res_type: str, res_id: str) -> StoredVersion:
        """``GET [type]/[id]``: the current version, if the requester may see it."""
        supported_type(res_type)
        self.allow(res_type, Permission.READ)
        found = await reads.read_async(self._reader, res_type, res_id)
        return await self._disclosed(found, reads.read_answers(res_type, res_id))

    async def vread(self, res_type: str, res_id: str, version_id: str) -> StoredVersion:
        """``GET [type]/[id]/_history/[vid]``."""
        supported_type(res_type)
        self.allow(res_type, Permission.READ)
        found = await reads.vread_async(self._reader, res_type, res_id, version_id)
        return await self._disclosed(found, reads.vread_answers(res_type, res_id, version_id))

    async def _disclosed(
        self,
        found: StoredVersion | None,
        answers: reads.Answers,
        access: AccessControl | None = None,
    ) -> StoredVersion:
        """``found`` if consent lets the requester know of it; otherwise the
        answer for a missing resource, exactly. A decision that needs nothing
        more read is taken on the event loop."""
        if found is None:
            raise answers.missing()
        access = access or self.access()
        at_once = access.decided_at_once(found)
        if at_once is not None:
            if not at_once.permit:
                raise answers.missing()
            return found
        return await _off_loop(
            partial(reads.disclosed, self._store, found, access.visible, answers)
        )

    # -- search and history ----------------------------------------------------

    async def search(self, query: SearchQuery, path: str) -> dict[str, Any]:
        """A searchset page of what the requester may see (consent decides
        every candidate; the token's scopes, which types it may search and
        include)."""
        authorize_search(self.scopes, query)
        access = self.access()
        result = await _off_loop(
            partial(
                searches.search,
                self._store,
                query,
                visible=access.visible,
                includable=includable(self.scopes).__contains__,
                prefilter=access.scope,
            )
        )
        if not (result.matches or result.included or result.total):
            self.found_nothing()
        return searches.searchset_bundle(result, query, base_url=self.base_url, path=path)

    async def history(
        self,
        params: Sequence[tuple[str, str]],
        path: str,
        res_type: str | None = None,
        res_id: str | None = None,
    ) -> dict[str, Any]:
        """A page of the history at ``path`` (the server's, a type's or one
        resource's), of the versions the requester may see."""
        if res_type is None:
            for each in RESOURCES:  # the whole server's: every type's
                self.allow(each, Permission.SEARCH)
        else:
            supported_type(res_type)
            self.allow(res_type, Permission.READ if res_id else Permission.SEARCH)
        request = histories.parse_history_params(params)
        visible = self.access().visible
        page = await _off_loop(
            partial(histories.history, self._store, request, res_type, res_id, visible=visible)
        )
        if not page.entries:
            self.found_nothing()
        return histories.history_bundle(page, request, base_url=self.base_url, path=path)

    # -- writes --------------------------------------------------------------------

    async def create(
        self, res_type: str, body: Any, if_none_exist: str | None
    ) -> write.WriteResult:
        """``POST [type]``, conditional with ``If-None-Exist``."""
        return await _off_loop(
            partial(write.create, self._store, self, res_type, body, if_none_exist=if_none_exist)
        )

    async def update(
        self, res_type: str, res_id: str, body: Any, if_match: int | None
    ) -> write.WriteResult:
        """``PUT [type]/[id]``."""
        return await _off_loop(
            partial(write.update, self._store, self, res_type, res_id, body, if_match=if_match)
        )

    async def conditional_update(
        self, res_type: str, query: str, body: Any, if_match: int | None
    ) -> write.WriteResult:
        """``PUT [type]?criteria``."""
        return await _off_loop(
            partial(
                write.conditional_update,
                self._store,
                self,
                res_type,
                query,
                body,
                if_match=if_match,
            )
        )

    async def patch(
        self, res_type: str, res_id: str, patch: Patch, if_match: int | None
    ) -> write.WriteResult:
        """``PATCH [type]/[id]``."""
        return await _off_loop(
            partial(write.patch, self._store, self, res_type, res_id, patch, if_match=if_match)
        )

    async def conditional_patch(
        self, res_type: str, query: str, patch: Patch, if_match: int | None
    ) -> write.WriteResult:
        """``PATCH [type]?criteria``."""
        return await _off_loop(
            partial(
                write.conditional_patch,
                self._store,
                self,
                res_type,
                query,
                patch,
                if_match=if_match,
            )
        )

    async def delete(self, res_type: str, res_id: str) -> StoredVersion | None:
        """``DELETE [type]/[id]``: the deletion written, or ``None`` when
        nothing the requester may see stood there (answered alike)."""
        deleted = await _off_loop(partial(write.delete, self._store, self, res_type, res_id))
        if deleted is None:
            self.found_nothing()
        return deleted

    async def bundle(self, body: Any, prefer: ReturnPreference) -> dict[str, Any]:
        """``POST [base]``: a batch or a transaction, every entry for this
        requester."""
        kind = body.get("type") if isinstance(body, dict) else None
        process = bundles.transaction if kind == "transaction" else bundles.batch
        self._disclosures.interaction = "transaction" if kind == "transaction" else "batch"
        answer = await _off_loop(
            partial(process, self._store, self, body, base_url=self.base_url, prefer=prefer)
        )
        for entry in answer.get("entry", []):
            response = entry.get("response", {})
            status = str(response.get("status", ""))
            # A 404, or a deletion of nothing the requester may see.
            if status.startswith("404") or (status.startswith("204") and "etag" not in response):
                self.found_nothing()
        return answer

    # -- operations ----------------------------------------------------------------

    async def everything(
        self, patient_id: str, params: Sequence[tuple[str, str]]
    ) -> dict[str, Any]:
        """``Patient/[id]/$everything``: the person's record the requester may see."""
        await self.read("Patient", patient_id)
        query = everything_query(
            patient_id,
            list(params),
            base_url=self.base_url,
            within=self.scopes.types_allowing(Permission.SEARCH),
        )
        return await self.search(query, f"Patient/{patient_id}/$everything")

    async def document(
        self,
        operation: str,
        patient_id: str | None,
        params: Sequence[tuple[str, str]],
    ) -> Document:
        """``$summary`` or ``$red-bag`` of the person ``patient_id`` names (or,
        at the type level, the ``identifier`` parameter), built of what the
        requester may see and its token may read. The document and what is in
        it are noted for the audit entry."""
        kind = documents.kind_of(operation)
        self.allow("Patient", Permission.READ)
        access = self.access()
        if patient_id is not None:
            if any(name == "identifier" for name, _ in params):
                raise InvalidRequest(
                    "identifier names the person at the type level (Patient/$summary); "
                    "here the id in the path does",
                    code="GW-0451",
                )
            found = await reads.read_async(self._reader, "Patient", patient_id)
            patient = await self._disclosed(
                found, reads.read_answers("Patient", patient_id), access
            )
        else:
            patient = await _off_loop(
                partial(documents.identified, self._store, params, access.visible)
            )
        readable = self.scopes.types_allowing(Permission.READ)
        built = await _off_loop(
            partial(
                documents.document,
                self._store,
                kind,
                patient,
                visible=access.visible,
                readable=readable.__contains__,
                base_url=self.base_url,
            )
        )
        self._disclosures.sent(built.identifier, kind.title, built.entries)
        return built

    # -- bulk export (secondary use) -----------------------------------------------

    async def export_kickoff(
        self,
        level: str,
        params: Sequence[tuple[str, str]],
        request_url: str,
        group_id: str | None = None,
    ) -> exports.Job:
        """``$export`` at ``level`` (of the Group ``group_id``, which the
        requester must be able to read): the export asked for, checked and
        accepted, to be run by a worker as this requester."""
        if group_id is not None:
            await self.read(COHORT_TYPE, group_id)
        searchable = self.scopes.types_allowing(Permission.SEARCH)
        ask = parse_ask(level, list(params), searchable=searchable, group=group_id)
        return await _off_loop(
            partial(exports.accept, self._store, self.requester, ask, request_url)
        )

    async def export_job(self, job_id: str) -> exports.Job:
        """The export ``job_id`` if this requester's client asked for it and
        it still stands; otherwise the answer for an export there never was,
        exactly."""
        job = await _off_loop(partial(exports.find, self._store, job_id))
        if (
            job is None
            or job.requester.client_id != self.requester.client_id
            or job.status in (exports.CANCELLED, exports.EXPIRED)
            or (job.expires is not None and job.expires <= time.time())
        ):
            self.found_nothing()
            raise NotFound(f"there is no export {job_id} of this client's", code="GW-0720")
        return job

    async def export_file(self, job_id: str, name: str, directory: str) -> Path:
        """The path of the completed export's file ``name``: only for the
        client that asked for the export."""
        job = await self.export_job(job_id)
        path = export_runner.file_path(Path(directory), job.id, name)
        if job.status != exports.COMPLETED or path is None or name not in job.file_names:
            self.found_nothing()
            raise NotFound(f"export {job_id} has no file {name!r}", code="GW-0722")
        if not path.is_file():
            # Written by another node to a folder this one does not share.
            raise StoreUnavailable(
                f"export {job_id}'s files are not reachable from this node "
                "(GATEWAY_EXPORT_DIR must be shared by every node)",
                code="GW-0723",
            )
        return path

    async def export_cancel(self, job_id: str) -> None:
        """``DELETE`` on an export's status: cancelled, its files to go."""
        job = await self.export_job(job_id)
        await _off_loop(partial(exports.cancel, self._store, job))

    async def ingest(self, fmt: str, body: bytes) -> dict[str, Any]:
        """``$ingest``: the requester's organisation pushes its own records,
        as this request's repository but landing at mapped ids."""
        # A push is bounded by its body's size (GATEWAY_MAX_BODY_BYTES) and
        # commits record by record: a work budget ending it half-way would
        # leave it half-loaded (measured: 6 s and 180 rows for a practice's
        # 2.3 MB of GP Connect records at the demo's scale).
        work = budget.current()
        if work is not None:
            work.lift()
        pushing = Repository(
            self._store,
            self._reader,
            self._grant,
            self._disclosures,
            self.base_url,
            self._line,
            pushing=True,
        )
        kind = self.requester.kind
        return await _off_loop(partial(ingests.ingest, self._store, pushing, kind, fmt, body))

    async def validate(
        self, res_type: str, res_id: str | None, body: Any, query: list[tuple[str, str]]
    ) -> dict[str, Any]:
        """``[type]/$validate`` and ``[type]/[id]/$validate``: whether the
        write the request describes would be accepted, run and rolled back."""
        supported_type(res_type)
        request = validation.parse(body, query)
        resource = request.resource
        if isinstance(resource, dict) and resource.get("resourceType") == res_type:
            # Whom the resource asked about is a record of (the entry names them).
            person = person_of(resource)
            if person:
                self._disclosures.patients.add(person)
        validated = await _off_loop(
            partial(validation.validate, self._store, self, res_type, res_id, request)
        )
        if validated.not_found:
            self.found_nothing()
        return validated.outcome

    async def access_report(self, patient_id: str) -> dict[str, Any]:
        """``Patient/[id]/$access-report``: who saw the person's record, for
        auditors and the person's own GP practice."""
        practices = await _off_loop(partial(registered_practices, self._store, patient_id))
        require_access_report(self.requester, practices)
        found = await reads.read_async(self._reader, "Patient", patient_id)
        if found is None or found.deleted:
            raise reads.not_known("Patient", patient_id)
        self._disclosures.patients.add(patient_id)  # the report is itself an access
        return await _off_loop(partial(audit_report.access_report, self._store, patient_id))

    async def access_check(self, body: Any) -> dict[str, Any]:
        """``$access-check``: what an organisation would see of a person's
        record, and why (compliance and audit only)."""
        require_compliance(self.requester, "$access-check")
        self.allow("Patient", Permission.READ)
        self.allow("Consent", Permission.READ)
        question = await _off_loop(partial(checks.parse_question, self._store, body))
        self._disclosures.patients.add(question.patient_id)
        return await _off_loop(partial(checks.access_check, self._store, question))

    # -- subscriptions -------------------------------------------------------------

    async def _own_subscription(self, sub_id: str) -> StoredVersion:
        """The Subscription ``sub_id``, if the requester may see it (its
        subscriber may; anyone else is answered as for none there)."""
        self.allow("Subscription", Permission.READ)
        found = await reads.read_async(self._reader, "Subscription", sub_id)
        return await self._disclosed(found, reads.read_answers("Subscription", sub_id))

    async def subscription_status(self, sub_id: str) -> dict[str, Any]:
        """``Subscription/[id]/$status``."""
        found = await self._own_subscription(sub_id)
        return await _off_loop(
            partial(subscription_operations.status, self._store, found, self.base_url)
        )

    async def subscription_events(
        self, sub_id: str, params: Sequence[tuple[str, str]]
    ) -> dict[str, Any]:
        """``Subscription/[id]/$events``: its events again, each as consent
        lets the requester see it now; the versions given are noted for the
        audit entry as a notification's are."""
        request = subscription_operations.parse_events_request(params)
        found = await self._own_subscription(sub_id)
        access = self.access()
        fetched = await _off_loop(
            partial(
                subscription_operations.events,
                self._store,
                found,
                request,
                self.base_url,
                may_see=access.visible,
                may_read=lambda res_type: self.scopes.allows(res_type, Permission.READ),
            )
        )
        for event in fetched.events:
            if event.patient_id:
                self._disclosures.patients.add(event.patient_id)
        if fetched.events:
            first, last = fetched.events[0].number, fetched.events[-1].number
            self._disclosures.sent(
                f"Subscription/{sub_id}/$events",
                f"events {first} to {last}",
                [event.focus for event in fetched.events],
            )
        return fetched.bundle
