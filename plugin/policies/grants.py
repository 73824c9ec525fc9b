"""A caller's grants as plain data, and the level they hold on one patient or study at an instant."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from plugin.policies.levels import AccessLevel

NEVER = math.inf


@dataclass(frozen=True)
class GrantTerm:
    level: AccessLevel
    expires_at: float = NEVER  # epoch seconds; NEVER when the grant does not expire


@dataclass(frozen=True)
class Held:
    """The best level held at an instant, and until when that stays true (a lower grant, or none,
    may follow); `level` is None when nothing is held."""

    level: AccessLevel | None
    until: float = NEVER


NOTHING = Held(None)


@dataclass(frozen=True)
class GrantSet:
    """Grants of one caller keyed by DICOM PatientID and by StudyInstanceUID, best level first."""

    patients: dict[str, tuple[GrantTerm, ...]] = field(default_factory=dict)
    studies: dict[str, tuple[GrantTerm, ...]] = field(default_factory=dict)
    study_ids: dict[str, str] = field(default_factory=dict)  # StudyInstanceUID -> Orthanc id, when known

    @staticmethod
    def of(patient_terms: Iterable[tuple[str, GrantTerm]], study_terms: Iterable[tuple[str, GrantTerm]],
           study_ids: dict[str, str] | None = None) -> GrantSet:
        return GrantSet(_by_key(patient_terms), _by_key(study_terms), dict(study_ids or {}))

    def on_patient(self, patient_id: str, now: float) -> Held:
        """What a patient grant allows on the patient and every study of theirs, past or future."""
        return _best(self.patients.get(patient_id, ()), now)

    def on_study(self, patient_id: str, study_uid: str, now: float) -> Held:
        """The better of the patient's grants and the study's own grants."""
        return _better(_best(self.patients.get(patient_id, ()), now), _best(self.studies.get(study_uid, ()), now))

    def patient_ids(self, now: float) -> set[str]:
        return {key for key, terms in self.patients.items() if _best(terms, now).level is not None}

    def study_uids(self, now: float) -> set[str]:
        return {key for key, terms in self.studies.items() if _best(terms, now).level is not None}

    def best_level(self, now: float) -> AccessLevel | None:
        """The highest unexpired level held anywhere (None: nothing held), e.g. for which of a UI's
        buttons to show; every request is still decided on what it touches."""
        levels = [_best(terms, now).level for terms in (*self.patients.values(), *self.studies.values())]
        return max((level for level in levels if level is not None), default=None)

    def __bool__(self) -> bool:
        return bool(self.patients or self.studies)


def _by_key(terms: Iterable[tuple[str, GrantTerm]]) -> dict[str, tuple[GrantTerm, ...]]:
    grouped: dict[str, list[GrantTerm]] = {}
    for key, term in terms:
        grouped.setdefault(key, []).append(term)
    return {key: tuple(sorted(found, key=lambda t: (-t.level, -t.expires_at))) for key, found in grouped.items()}


def _best(terms: tuple[GrantTerm, ...], now: float) -> Held:
    """The highest unexpired level; it holds until its own expiry or until a lower one would
    take over, whichever the caller re-checks first (so: its expiry)."""
    for term in terms:
        if term.expires_at > now:
            return Held(term.level, term.expires_at)
    return NOTHING


def _better(a: Held, b: Held) -> Held:
    if a.level is None:
        return b
    if b.level is None or a.level > b.level:
        return a
    if b.level > a.level:
        return b
    return Held(a.level, max(a.until, b.until))
