"""The gate: identify, classify, decide, audit, for every HTTP request Orthanc receives.

Orthanc's incoming-request filter asks `GateService.remembered` first and `GateService.check`
when that says no. An allowed read is remembered for DecisionCacheSeconds (never past the
caller's own identity deadline, and forgotten at once when an identity is invalidated); a
remembered decision still counts towards the audit, so caching never skips the audit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from plugin.audit.log import AuditLog, ReadWindow
from plugin.audit.record import AuditRecord, iso_utc, patients_named
from plugin.errors import StoreUnavailable
from plugin.identity.authenticate import Authenticator, Identification
from plugin.policies.access import GRANTED_FAMILIES, decide
from plugin.policies.csrf import csrf_ok
from plugin.policies.qido import trimmed_search
from plugin.policies.routes import SAFE_METHODS, classify
from plugin.policies.types import ANONYMOUS, Decision, Principal, RouteInfo
from plugin.policies.uploads import stores_objects
from plugin.services.access import NO_SCOPE, AccessService, Scope
from plugin.services.uploads import UploadGuard, refused_upload_record
from plugin.store.db import Store

MAX_CACHED_DECISIONS = 50000
TICKET_MARK = "gate_download="  # the share download ticket's cookie (services/share_visits.py)
# (method, uri, query, headers, ip) -> None: no ticket for this request; True/False: its ticket decides.
TicketCheck = Callable[[str, str, dict[str, str], dict[str, str], str], bool | None]


@dataclass(frozen=True)
class _Remembered:
    until: float
    window: ReadWindow | None  # the audit window that counts repeats; None for non-PHI routes


def audit_record(principal: Principal, route: RouteInfo, ip: str, now: float, outcome: str,
                 reason: str, scope: Scope = NO_SCOPE) -> AuditRecord:
    named, listed = patients_named(loc.patient_id for loc in scope.located)
    detail = {**({"query": route.query_string} if route.query_string else {}), **listed}
    return AuditRecord(
        ts=iso_utc(now), actor=principal.username or "anonymous", roles=",".join(sorted(principal.roles)),
        source_ip=ip, method=route.method, path=route.path[:512], route_class=route.family,
        level=route.level or "", orthanc_id=route.resource_id if route.family in (
            "patients", "studies", "series", "instances", "web_viewer") else "",
        patient_id=named, study_uid=(scope.study_uids or route.study_uid or "")[:128],
        action=route.action.value, outcome=outcome, reason=reason[:512],
        detail=json.dumps(detail) if detail else "")


class GateService:
    def __init__(self, store: Store, authenticator: Authenticator, audit: AuditLog, access: AccessService,
                 decision_cache_seconds: float, clock: Callable[[], float] = time.time,
                 uploads: UploadGuard | None = None, searches_trimmed: Callable[[], bool] = lambda: False,
                 tickets: TicketCheck | None = None) -> None:
        self._health = store.health
        # A patient's counted download reaches a core archive route with a single-use ticket
        # (services/share_visits.py): asked only of requests that carry one.
        self._tickets = tickets
        # Whether server-wide DICOMweb searches are answered trimmed (services/dicomweb.py).
        self._searches_trimmed = searches_trimmed
        self._auth = authenticator
        self._access = access
        self._audit = audit
        self._ttl = decision_cache_seconds
        self._clock = clock
        self._remembered: dict[Hashable, _Remembered] = {}
        self.uploads = uploads or UploadGuard()
        authenticator.subscribe(self.forget_remembered)
        access.subscribe(self.forget_remembered)

    def remembered(self, memo_key: Hashable) -> bool:
        """The hot path of viewers and downloads: True if this exact read was allowed moments ago.

        Every Python step here holds the GIL, which all of Orthanc's HTTP threads queue on, so a
        remembered read costs a dict lookup and a counter (the audit still counts it), nothing more.
        `memo_key` is whatever the caller uses to tell requests apart (see entry.py); it must
        include the executed method, the path, the query and the credentials.
        """
        hit = self._remembered.get(memo_key)
        if hit is None:
            return False
        now = self._clock()
        if hit.until <= now:
            return False
        window = hit.window
        return window is None or (self._health.ok and window.repeat(now))

    def check(self, method: str, uri: str, ip: str, headers: dict[str, str], query: dict[str, str],
              memo_key: Hashable = None) -> bool:
        """Decide a request in full: True to let Orthanc serve it. Never raises for its content.

        An allowed read (safe method, no method override) is remembered under `memo_key` for
        DecisionCacheSeconds, never past the caller's identity deadline nor the expiry of the
        grant that allowed it.
        """
        now = self._clock()
        self.uploads.begin_request()
        generation = (self._auth.generation, self._access.generation)
        cacheable = (memo_key is not None and method in SAFE_METHODS and "x-http-method-override" not in headers
                     and "_method" not in query)
        route = classify(method, uri, query, headers)
        if route.family == "dicomweb_search" and self._searches_trimmed():
            route = trimmed_search(route)
        if self._tickets is not None and TICKET_MARK in headers.get("cookie", ""):
            opened = self._tickets(method, uri, query, headers, ip)
            if opened is not None:
                return opened
        if route.own_route:
            # Our own routes identify, authorise and audit the caller in their handlers; asking
            # here too would check a Basic password (and wait on the directory) twice.
            return True
        try:
            identification = self._auth.identify(headers, ip)
        except StoreUnavailable as exc:
            return self._deny(ANONYMOUS, route, ip, now, exc.message)
        principal = identification.principal
        scope = NO_SCOPE
        if route.family in GRANTED_FAMILIES and not principal.is_anonymous and not route.malformed \
                and not (route.query_problem and not principal.is_admin):
            try:
                scope = self._access.scope(principal, route, now)
            except StoreUnavailable as exc:
                return self._deny(principal, route, ip, now, exc.message)
        decision = self._decide(principal, route, identification, headers, scope)
        if not decision.allowed:
            reason = decision.reason
            if identification.failure:
                reason = f"{reason} ({identification.failure})"
            return self._deny(principal, route, ip, now, reason, scope)
        if stores_objects(route) and not principal.is_admin:
            self._hold_upload(principal, route, ip, now, scope)
        window = None
        # Trimmed searches are audited by their handler, which knows what the answer held; but a
        # DICOMweb search reaches it as the plugin's /tools/find, without the query the caller
        # sent: that query is recorded here.
        if route.carries_phi and (not route.trimmed or route.family == "dicomweb_search"):
            if route.method not in SAFE_METHODS:
                return self._allow_change(principal, route, decision.reason, ip, now, scope)
            window = self._allow_read(principal, route, decision.reason, ip, now, scope)
            if window is None:
                return False
        # Our own routes are never remembered: their handlers authorise (and audit, with the
        # caller's address that only this full check hands over) every request themselves. Nor
        # is anything decided while an identity was being invalidated.
        if (cacheable and not route.own_route and not route.trimmed and self._ttl > 0
                and generation == (self._auth.generation, self._access.generation)):
            until = min(now + self._ttl, scope.held.until)
            if not principal.is_anonymous:
                until = min(until, identification.valid_until)
            if len(self._remembered) >= MAX_CACHED_DECISIONS:
                self._remembered.clear()
            self._remembered[memo_key] = _Remembered(until, window)
        return True

    def deny_internal_error(self, method: str, uri: str, ip: str) -> None:
        """Record that a request was refused because the gate itself failed on it."""
        route = classify(method, uri, {}, {})
        self._deny(ANONYMOUS, route, ip, self._clock(), "internal error in the gate")

    def forget_remembered(self) -> None:
        self._remembered.clear()

    # -- steps ---------------------------------------------------------------------------------

    @staticmethod
    def _decide(principal: Principal, route: RouteInfo, identification: Identification,
                headers: dict[str, str], scope: Scope) -> Decision:
        decision = decide(principal, route, scope.held.level)
        if decision.allowed and not route.own_route and not csrf_ok(
                route.method, principal.via, headers, identification.csrf_token):
            return Decision.deny("cross-site request refused (CSRF check)")
        return decision

    def _hold_upload(self, principal: Principal, route: RouteInfo, ip: str, now: float, scope: Scope) -> None:
        """What this upload may store: objects of the granted study and its patient (services/uploads.py)."""
        allowed = frozenset((loc.patient_id, loc.study_uid) for loc in scope.located if loc.study_uid)
        who = principal.username or f"address {ip}"

        def refuse(reason: str, carried: tuple[str, str] | None) -> None:
            record = audit_record(principal, route, ip, self._clock(), "deny", reason, scope)
            key = ("upload refused", who, route.path, reason, carried)
            self._audit.record_denial(key, who, lambda: refused_upload_record(record, reason, carried))

        self.uploads.expect(allowed, refuse)

    def _allow_read(self, principal: Principal, route: RouteInfo, reason: str, ip: str,
                    now: float, scope: Scope) -> ReadWindow | None:
        """The audit window covering this read once its row is durable; None (and a denial) if not.

        Reads coalesce by (actor, what was read, action, outcome), what was read being the study
        (or patient) once located, so a viewer's hundreds of frame requests on one study make one
        row with a count; the reason tells outcomes apart.
        """
        if not self._health.ok:
            self._deny(principal, route, ip, now, f"store unavailable: {self._health.error}", scope)
            return None
        subject: Hashable = (route.family, route.resource_id or route.path)
        if scope.located:
            subject = scope.study_uids or scope.patient_ids
        # A search is recorded with its whole query: each different one gets its own row.
        audit_key = (principal.username, subject, route.action.value, reason, route.query_string)
        window = self._audit.cover_read(
            audit_key, lambda: audit_record(principal, route, ip, now, "allow", reason, scope), now)
        if window is None:
            self._deny(principal, route, ip, now, "audit record could not be written; refused", scope)
        return window

    def _allow_change(self, principal: Principal, route: RouteInfo, reason: str, ip: str, now: float,
                      scope: Scope) -> bool:
        """A state change gets its own durable row before it is let through."""
        if not self._health.ok:
            return self._deny(principal, route, ip, now, f"store unavailable: {self._health.error}", scope)
        if self._audit.record(audit_record(principal, route, ip, now, "allow", reason, scope), durable=True):
            return True
        return self._deny(principal, route, ip, now, "audit record could not be written; refused", scope)

    def _deny(self, principal: Principal, route: RouteInfo, ip: str, now: float, reason: str,
              scope: Scope = NO_SCOPE) -> bool:
        """Refuse, audited: the first refusal of its kind gets a row, its repeats a count."""
        who = principal.username or f"address {ip}"
        key = ("deny", who, route.method, route.path, route.query_string, reason, scope.patient_ids,
               scope.study_uids)
        self._audit.record_denial(key, who, lambda: audit_record(principal, route, ip, now, "deny", reason, scope),
                                  now)
        return False
