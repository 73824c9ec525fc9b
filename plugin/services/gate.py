"""The gate: identify, classify, decide, audit, for every HTTP request Orthanc receives.

`GateService.check` is what Orthanc's incoming-request filter calls. It must cost microseconds
on the hot path, so an allowed safe request is remembered for DecisionCacheSeconds (never past
the caller's own identity deadline, and dropped at once when an identity is invalidated); a
remembered decision still counts towards the audit, so caching never skips the audit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from plugin.audit.log import AuditLog
from plugin.audit.record import AuditRecord, iso_utc
from plugin.errors import StoreUnavailable
from plugin.identity.authenticate import Authenticator, Identification
from plugin.policies.access import decide
from plugin.policies.csrf import csrf_ok
from plugin.policies.routes import SAFE_METHODS, classify
from plugin.policies.types import ANONYMOUS, Decision, Principal, RouteInfo
from plugin.store.db import Store

MAX_CACHED_DECISIONS = 50000


@dataclass(frozen=True)
class _Remembered:
    until: float
    generation: int
    principal: Principal
    route: RouteInfo
    audit_key: tuple | None  # None: nothing to audit (public or non-PHI route)


def audit_record(principal: Principal, route: RouteInfo, ip: str, now: float, outcome: str,
                 reason: str) -> AuditRecord:
    return AuditRecord(
        ts=iso_utc(now), actor=principal.username or "anonymous", roles=",".join(sorted(principal.roles)),
        source_ip=ip, method=route.method, path=route.path[:512], route_class=route.family,
        level=route.level or "", orthanc_id=route.resource_id if route.family in (
            "patients", "studies", "series", "instances") else "",
        study_uid=route.study_uid or "", action=route.action.value, outcome=outcome, reason=reason[:512])


class GateService:
    def __init__(self, store: Store, authenticator: Authenticator, audit: AuditLog,
                 decision_cache_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._auth = authenticator
        self._audit = audit
        self._ttl = decision_cache_seconds
        self._clock = clock
        self._remembered: dict[tuple, _Remembered] = {}

    def check(self, method: str, uri: str, ip: str, headers: dict[str, str], query: dict[str, str]) -> bool:
        """True to let Orthanc serve the request. Never raises for a request's content."""
        now = self._clock()
        cache_key = None
        if method in SAFE_METHODS and "x-http-method-override" not in headers and "_method" not in query:
            cache_key = (method, uri, tuple(query.items()) if query else (),
                         headers.get("authorization"), headers.get("cookie"))
            hit = self._remembered.get(cache_key)
            if hit is not None and hit.until > now and hit.generation == self._auth.generation:
                return self._audited_allow(hit.principal, hit.route, hit.audit_key, ip, now)
        route = classify(method, uri, query, headers)
        try:
            identification = self._auth.identify(headers)
        except StoreUnavailable as exc:
            return self._deny(ANONYMOUS, route, ip, now, exc.message)
        principal = identification.principal
        decision = self._decide(principal, route, identification, headers)
        if not decision.allowed:
            reason = decision.reason
            if identification.failure:
                reason = f"{reason} ({identification.failure})"
            return self._deny(principal, route, ip, now, reason)
        audit_key = None
        if route.carries_phi:
            audit_key = (principal.username, route.family, route.resource_id or route.path,
                         route.action.value, decision.reason)
        allowed = self._audited_allow(principal, route, audit_key, ip, now)
        if allowed and cache_key is not None and self._ttl > 0:
            until = now + self._ttl
            if not principal.is_anonymous:
                until = min(until, identification.valid_until)
            if len(self._remembered) >= MAX_CACHED_DECISIONS:
                self._remembered.clear()
            self._remembered[cache_key] = _Remembered(until, self._auth.generation, principal, route, audit_key)
        return allowed

    def deny_internal_error(self, method: str, uri: str, ip: str) -> None:
        """Record that a request was refused because the gate itself failed on it."""
        route = classify(method, uri, {}, {})
        self._deny(ANONYMOUS, route, ip, self._clock(), "internal error in the gate")

    def forget_remembered(self) -> None:
        self._remembered.clear()

    # -- steps ---------------------------------------------------------------------------------

    @staticmethod
    def _decide(principal: Principal, route: RouteInfo, identification: Identification,
                headers: dict[str, str]) -> Decision:
        decision = decide(principal, route)
        if decision.allowed and not route.own_route and not csrf_ok(
                route.method, principal.via, headers, identification.csrf_token):
            return Decision.deny("cross-site request refused (CSRF check)")
        return decision

    def _audited_allow(self, principal: Principal, route: RouteInfo, audit_key: tuple | None, ip: str,
                       now: float) -> bool:
        """Allow only once the audit covers the request durably; refuse if it cannot."""
        if audit_key is None:
            return True
        if not self._store.health.ok:
            return self._deny(principal, route, ip, now, f"store unavailable: {self._store.health.error}")
        reason = audit_key[-1]
        if route.method in SAFE_METHODS:
            ok = self._audit.record_read(audit_key, lambda: audit_record(principal, route, ip, now, "allow", reason))
        else:
            ok = self._audit.record(audit_record(principal, route, ip, now, "allow", reason), durable=True)
        if ok:
            return True
        return self._deny(principal, route, ip, now, "audit record could not be written; refused")

    def _deny(self, principal: Principal, route: RouteInfo, ip: str, now: float, reason: str) -> bool:
        self._audit.record(audit_record(principal, route, ip, now, "deny", reason))
        return False
