"""Which registered doctor a new study is referred to, and whether its patient is the one seen before (pure)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from plugin.policies.doctors import HPCSA_NUMBER

MAX_VALUES = 16  # values kept per element: a referral names a handful of physicians, not thousands
MAX_NAME_LENGTH = 320  # a PN is at most 64 characters per component group; anything longer is no name
SHOWN_NAME_LENGTH = 256
LOGGED_NAME_LENGTH = 64  # what of a written name a reason (the audit) may carry
MAX_CODE_LENGTH = 64  # longer codes are cut, never dropped: a present code must still force a review
MAX_TOKENS = 16  # more words than any real name; also bounds the readings of free text
LINK, REVIEW, NONE = "link", "review", "none"
INACTIVE = "who is disabled or whose HPCSA registration is inactive"
# Titles and degrees (English and Afrikaans), folded and without dots: never part of a name.
TITLES = frozenset("""
    dr doctor dokter prof professor mr mrs ms miss mx mnr mev mej me sr sister ds dominee rev revd sir herr frau
    jr jnr snr ii iii md mb chb bch mbchb mbbch mbbs bchd bds fcrad fcradd fcraddsa fcradsa fcs fcssa fcp fcpsa
    fcog frcr frcs frcp ffrad mmed mmedrad mmeddrad dmrd phd msc bsc
""".split())
NON_WORD = re.compile(r"[\W_]+")
APOSTROPHES = str.maketrans("", "", "'\u2019\u2018`\u00b4\u02bc")  # "D'Oliveira" is one name: doliveira
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
BIRTH_DATE = re.compile(r"[0-9]{8}")
SA_ID = re.compile(r"[0-9]{13}")
SEXES = frozenset({"M", "F", "O"})


@dataclass(frozen=True)
class PersonName:
    family: str  # normalised: casefolded, accents removed, no spaces/hyphens/apostrophes/dots
    given: tuple[str, ...]  # normalised given-name tokens in order, initials as 1-letter tokens


@dataclass(frozen=True)
class DoctorCandidate:
    doctor_id: int
    hpcsa_number: str
    first_name: str
    last_name: str
    aliases: tuple[str, ...]  # other spellings seen in DICOM, e.g. "SMITH^J", "Dr John Smith"
    linkable: bool  # False when the doctor is disabled or their HPCSA registration is inactive


@dataclass(frozen=True)
class ReferralTags:
    referring_names: tuple[str, ...]  # ReferringPhysicianName (0008,0090)
    referring_codes: tuple[str, ...]  # code values in ReferringPhysicianIdentificationSequence (0008,0096)
    requesting_names: tuple[str, ...]  # RequestingPhysician (0032,1032)
    physicians_of_record: tuple[str, ...]  # PhysiciansOfRecord (0008,1048)
    accession_number: str


@dataclass(frozen=True)
class ReferralMatch:
    outcome: str  # LINK | REVIEW | NONE
    doctor_id: int | None  # set only for LINK
    reason: str  # for the audit and the review queue: no more of a written name than LOGGED_NAME_LENGTH
    candidates: tuple[int, ...]  # doctor ids a reviewer should consider, sorted
    matched_by: str  # "hpcsa" | "name" | "alias" when one doctor was identified, else ""
    written_name: str  # the physician name the decision was about, for display; "" if none


@dataclass(frozen=True)
class PatientTags:
    patient_id: str
    name: str  # DICOM PN as stored
    birth_date: str  # YYYYMMDD or ""
    sex: str  # "M" | "F" | "O" | ""


@dataclass(frozen=True)
class SaIdNumber:
    birth_yymmdd: str
    sex: str  # "F" for gender digits 0000-4999, "M" for 5000-9999


@dataclass(frozen=True)
class _Known:
    """One way a doctor's name is written: their own name, or one reading of an alias."""

    doctor: DoctorCandidate
    given: tuple[str, ...]
    via: str  # "name" | "alias"


@dataclass(frozen=True)
class _NameSource:
    """What the deciding name element says: who its names match, and who merely shares a surname."""

    label: str
    names: tuple[str, ...]
    hits: Mapping[int, tuple[str, str]]  # doctor id -> ("name" or "alias", the first name that matched)
    surname_sharers: tuple[int, ...]


# -- names ---------------------------------------------------------------------------------------------


def person_name_readings(pn: str) -> tuple[PersonName, ...]:
    """The ways a written name can be read: one for a DICOM PN 'Family^Given^Middle^Prefix^Suffix' (its
    alphabetic group only), every plausible split for free text; () when nothing usable is left."""
    if not isinstance(pn, str) or len(pn) > MAX_NAME_LENGTH:
        return ()
    alphabetic = pn.split("=", 1)[0]
    readings = _structured_reading(alphabetic.split("^")) if "^" in alphabetic else _free_text_readings(alphabetic)
    return tuple(dict.fromkeys(readings))


def _structured_reading(components: list[str]) -> list[PersonName]:
    # The prefix and suffix components hold titles and degrees by definition: never compared.
    family, given, middle = (components + ["", ""])[:3]
    family_tokens, given_tokens = _tokens(family), _tokens(given) + _tokens(middle)
    if not family_tokens or len(family_tokens) + len(given_tokens) > MAX_TOKENS:
        return []
    return [PersonName("".join(family_tokens), tuple(given_tokens))]


def _free_text_readings(text: str) -> list[PersonName]:
    before, comma, after = text.partition(",")
    family_tokens, given_tokens = _tokens(before), _tokens(after)
    if comma and family_tokens and given_tokens:  # "Smith, John"; but "John Smith, MBChB" is no comma form
        return _structured_reading([before, after])
    tokens = family_tokens + given_tokens
    if len(tokens) > MAX_TOKENS:
        return []
    # The family name is a leading or a trailing run of words; all of them is a surname written alone.
    readings = []
    for size in range(1, len(tokens) + 1):
        readings.append(PersonName("".join(tokens[:size]), tuple(tokens[size:])))
        readings.append(PersonName("".join(tokens[-size:]), tuple(tokens[:-size])))
    return readings


def _tokens(text: str) -> list[str]:
    """Folded words without titles; dots, hyphens and other punctuation split them ('Jan-Hendrik')."""
    tokens: list[str] = []
    for word in _fold(text).split():
        # "Ph.D." is one title, but "J.R." is two initials rather than "Jr".
        if NON_WORD.sub("", word) in TITLES and not _dotted_initials(word):
            continue
        tokens.extend(token for token in NON_WORD.split(word) if token and token not in TITLES)
    return tokens


def _dotted_initials(word: str) -> bool:
    parts = word.strip(".").split(".")
    return len(parts) > 1 and all(len(part) == 1 for part in parts)


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(APOSTROPHES).casefold())
    return "".join(character for character in decomposed if not unicodedata.combining(character))


def _given_compatible(written: tuple[str, ...], known: tuple[str, ...]) -> bool:
    return any(all(_token_compatible(a, b) for a, b in zip(left, right, strict=False))
               for left in _initials_variants(written) for right in _initials_variants(known))


def _token_compatible(a: str, b: str) -> bool:
    return a == b or (len(a) == 1 and b.startswith(a)) or (len(b) == 1 and a.startswith(b))


def _initials_variants(given: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    """As written, and with every short all-letter token read as initials ('JP' for 'Jan Pieter')."""
    spelled = tuple(letter for token in given
                    for letter in (token if token.isalpha() and 2 <= len(token) <= 3 else [token]))
    return (given, spelled) if spelled != given else (given,)


def _agrees(reading: PersonName, known: _Known) -> bool:
    if not reading.given:  # a surname alone could be any doctor of that name, unless an alias says so
        return known.via == "alias" and not known.given
    if not known.given:  # an unknown first name cannot contradict; an alias of a surname alone must be exact
        return known.via == "name"
    return _given_compatible(reading.given, known.given)


# -- matching ------------------------------------------------------------------------------------------


def match_referral(tags: ReferralTags, doctors: Sequence[DoctorCandidate],
                   hpcsa_prefixes: frozenset[str]) -> ReferralMatch:
    """Link the study to exactly one linkable doctor, or send it to review; "none" when it names no referrer.

    A wrong link shows a patient's images to the wrong doctor, so whatever is ambiguous, contradictory or
    unusable goes to review. An HPCSA number decides before any name.
    """
    source = _deciding_names(tags, _index(doctors))
    codes = [code for code in (_normal_code(value) for value in tags.referring_codes) if code]
    if codes:
        return _by_hpcsa(codes, doctors, hpcsa_prefixes, source)
    if source is not None:
        return _by_name(source, doctors)
    return ReferralMatch(NONE, None, "the study names no referring physician", (), "", "")


def _index(doctors: Iterable[DoctorCandidate]) -> dict[str, list[_Known]]:
    index: dict[str, list[_Known]] = {}
    for doctor in doctors:
        for reading in _structured_reading([doctor.last_name, doctor.first_name]):
            index.setdefault(reading.family, []).append(_Known(doctor, reading.given, "name"))
        for alias in doctor.aliases:
            for reading in person_name_readings(alias):
                index.setdefault(reading.family, []).append(_Known(doctor, reading.given, "alias"))
    return index


def _deciding_names(tags: ReferralTags, index: dict[str, list[_Known]]) -> _NameSource | None:
    """The first element (referring, requesting, of record) with a usable name decides alone."""
    for label, values in (("referring physician", tags.referring_names),
                          ("requesting physician", tags.requesting_names),
                          ("physician of record", tags.physicians_of_record)):
        names = tuple(name for name in values if person_name_readings(name))
        if names:
            return _name_source(label, names, index)
    return None


def _name_source(label: str, names: tuple[str, ...], index: dict[str, list[_Known]]) -> _NameSource:
    hits: dict[int, tuple[str, str]] = {}
    sharers: set[int] = set()
    for name in names:
        for reading in person_name_readings(name):
            for known in index.get(reading.family, ()):
                doctor_id = known.doctor.doctor_id
                sharers.add(doctor_id)
                if _agrees(reading, known):
                    via, first = hits.get(doctor_id, (known.via, name))
                    hits[doctor_id] = ("name" if "name" in (via, known.via) else "alias", first)
    return _NameSource(label, names, hits, tuple(sorted(sharers)))


def _by_hpcsa(codes: list[str], doctors: Sequence[DoctorCandidate], prefixes: frozenset[str],
              source: _NameSource | None) -> ReferralMatch:
    shown = _shown(source.names[0], SHOWN_NAME_LENGTH) if source else ""
    named = (tuple(sorted(source.hits)) or source.surname_sharers) if source else ()
    owners: dict[str, set[int]] = {}
    for doctor in doctors:
        owners.setdefault(_normal_code(doctor.hpcsa_number), set()).add(doctor.doctor_id)
    for code in codes:
        match = HPCSA_NUMBER.fullmatch(code)
        if match is None or match.group(1) not in prefixes:
            return _review(f'referring physician code "{_shown(code, 32)}" is not an HPCSA number', named, "", shown)
        if code not in owners:
            return _review(f"HPCSA number {code} is not registered to any doctor", named, "", shown)
    coded = sorted(set().union(*(owners[code] for code in codes)))
    numbers = ", ".join(dict.fromkeys(codes))
    if len(coded) > 1:
        return _review(f"HPCSA numbers {numbers} belong to {_doctors(coded)}", coded, "", shown)
    doctor = next(doctor for doctor in doctors if doctor.doctor_id == coded[0])
    if source and source.hits and doctor.doctor_id not in source.hits:  # the name names someone else
        return _review(f'HPCSA number {numbers} belongs to doctor {doctor.doctor_id}, but {source.label} '
                       f'"{_shown(source.names[0])}" matches {_doctors(sorted(source.hits))}',
                       {*source.hits, *coded}, "", shown)
    if source and doctor.doctor_id in source.hits:
        shown = _shown(source.hits[doctor.doctor_id][1], SHOWN_NAME_LENGTH)
    if not doctor.linkable:
        return _review(f"HPCSA number {numbers} belongs to doctor {doctor.doctor_id}, {INACTIVE}", coded, "hpcsa",
                       shown)
    return ReferralMatch(LINK, doctor.doctor_id, f"HPCSA number {numbers}", (), "hpcsa", shown)


def _by_name(source: _NameSource, doctors: Sequence[DoctorCandidate]) -> ReferralMatch:
    matched = sorted(source.hits)
    if len(matched) != 1:
        quoted, shown = f'{source.label} "{_shown(source.names[0])}"', _shown(source.names[0], SHOWN_NAME_LENGTH)
        if matched:
            return _review(f"{quoted} matches {_doctors(matched)}", matched, "", shown)
        sharing = f" ({_doctors(source.surname_sharers)} with that surname)" if source.surname_sharers else ""
        return _review(f"no registered doctor matches {quoted}{sharing}", source.surname_sharers, "", shown)
    doctor = next(doctor for doctor in doctors if doctor.doctor_id == matched[0])
    via, written = source.hits[doctor.doctor_id]
    found = f'{source.label} "{_shown(written)}" matches doctor {doctor.doctor_id}' + (
        " by an alias" if via == "alias" else "")
    if not doctor.linkable:
        return _review(f"{found}, {INACTIVE}", matched, via, _shown(written, SHOWN_NAME_LENGTH))
    return ReferralMatch(LINK, doctor.doctor_id, found, (), via, _shown(written, SHOWN_NAME_LENGTH))


def _review(reason: str, candidates: Iterable[int], matched_by: str, written_name: str) -> ReferralMatch:
    return ReferralMatch(REVIEW, None, reason, tuple(sorted(candidates)), matched_by, written_name)


def _normal_code(value: str) -> str:
    return "".join(value.split()).upper()


def _shown(text: str, limit: int = LOGGED_NAME_LENGTH) -> str:
    """A written value cut for the audit or a page, control characters (even ISO 2022 escapes) masked."""
    return CONTROL_CHARACTERS.sub("?", text[:limit])


def _doctors(ids: Sequence[int]) -> str:
    """'doctor 3', 'doctors 3 and 7', 'doctors 3, 5 and 7'."""
    if len(ids) == 1:
        return f"doctor {ids[0]}"
    return f"doctors {', '.join(map(str, ids[:-1]))} and {ids[-1]}"


# -- reading Orthanc's simplified tags -----------------------------------------------------------------


def referral_tags(simplified: Any) -> ReferralTags:
    """The referral elements of one instance's simplified-tags JSON; whatever has the wrong shape is ignored."""
    tags = simplified if isinstance(simplified, dict) else {}
    return ReferralTags(
        referring_names=_names(tags.get("ReferringPhysicianName")),
        referring_codes=_codes(tags.get("ReferringPhysicianIdentificationSequence")),
        requesting_names=_names(tags.get("RequestingPhysician")),
        physicians_of_record=_names(tags.get("PhysiciansOfRecord")),
        accession_number=_text(tags.get("AccessionNumber"), 64),
    )


def _names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, str):
        return ()
    values = (name.strip() for name in value.split("\\", MAX_VALUES)[:MAX_VALUES])
    return tuple(name for name in values if name and len(name) <= MAX_NAME_LENGTH)


def _codes(sequence: Any) -> tuple[str, ...]:
    values = []
    for item in _items(sequence):
        values.append(item.get("CodeValue"))
        values.extend(inner.get("CodeValue") for inner in _items(item.get("PersonIdentificationCodeSequence")))
    codes = (value[:MAX_CODE_LENGTH].strip() for value in values if isinstance(value, str))
    return tuple(code for code in codes if code)[:MAX_VALUES]


def _items(sequence: Any) -> list[dict]:
    if not isinstance(sequence, list):
        return []
    return [item for item in sequence[:MAX_VALUES] if isinstance(item, dict)]


def _text(value: Any, limit: int) -> str:
    """The stripped string, or "" (unknown) when it is no string or longer than the element allows."""
    text = value.strip() if isinstance(value, str) else ""
    return text if len(text) <= limit else ""


# -- the patient -----------------------------------------------------------------------------------------


def patient_tags(simplified: Any) -> PatientTags:
    """The patient elements of one instance's simplified-tags JSON; a malformed value reads as unknown ("")."""
    tags = simplified if isinstance(simplified, dict) else {}
    birth_date = _text(tags.get("PatientBirthDate"), 8)
    sex = _text(tags.get("PatientSex"), 1).upper()
    return PatientTags(patient_id=_text(tags.get("PatientID"), 64),
                       name=_text(tags.get("PatientName"), MAX_NAME_LENGTH),
                       birth_date=birth_date if BIRTH_DATE.fullmatch(birth_date) else "",
                       sex=sex if sex in SEXES else "")


def patient_mismatches(seen: PatientTags, arriving: PatientTags) -> tuple[str, ...]:
    """Why the arriving study's patient may not be the one seen before under the same PatientID.

    The reasons go to the audit, so they never carry the patient's name or ID. An empty value is unknown.
    """
    reasons = []
    if not _same_person(seen.name, arriving.name):
        reasons.append("name differs from earlier studies")
    if seen.birth_date and arriving.birth_date and seen.birth_date != arriving.birth_date:
        reasons.append(f"birth date differs from earlier studies ({seen.birth_date[:8]} before, "
                       f"{arriving.birth_date[:8]} now)")
    if seen.sex and arriving.sex and seen.sex != arriving.sex:
        reasons.append(f"sex differs from earlier studies ({seen.sex[:1]} before, {arriving.sex[:1]} now)")
    return tuple(reasons)


def _same_person(seen: str, arriving: str) -> bool:
    """Same family name, and given names equal as far as both go (a middle name left out is no difference)."""
    before, now = person_name_readings(seen), person_name_readings(arriving)
    if not before or not now:
        return True
    return any(old.family == new.family and old.given[:len(new.given)] == new.given[:len(old.given)]
               for old in before for new in now)


def sa_id_number(value: str) -> SaIdNumber | None:
    """A South African ID number (YYMMDD SSSS C A Z, Z a Luhn check digit), or None."""
    if not isinstance(value, str) or not SA_ID.fullmatch(value):
        return None
    if value[10] not in "012" or not _luhn_valid(value) or not _real_date(value[:6]):
        return None
    return SaIdNumber(value[:6], "F" if int(value[6:10]) < 5000 else "M")


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, digit in enumerate(reversed(digits)):
        value = int(digit) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _real_date(yymmdd: str) -> bool:
    """A date in 19YY or in 20YY: the ID does not say which century."""
    year, month, day = (int(yymmdd[i:i + 2]) for i in (0, 2, 4))
    for century in (1900, 2000):
        try:
            date(century + year, month, day)
        except ValueError:
            continue
        return True
    return False


def sa_id_contradictions(patient: PatientTags) -> tuple[str, ...]:
    """Where a PatientID that is an SA ID number disagrees with PatientBirthDate or PatientSex."""
    number = sa_id_number(patient.patient_id)
    if number is None:
        return ()
    reasons = []
    if BIRTH_DATE.fullmatch(patient.birth_date) and patient.birth_date[2:] != number.birth_yymmdd:
        reasons.append(f"PatientBirthDate {patient.birth_date} is not the birth date in the SA ID number "
                       "used as PatientID")
    if patient.sex in ("M", "F") and patient.sex != number.sex:
        reasons.append(f"PatientSex {patient.sex} is not the sex in the SA ID number used as PatientID")
    return tuple(reasons)
