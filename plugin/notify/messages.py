"""The messages the Gate sends, rendered: "study ready" to a referring doctor, and a welcome.

What goes by e-mail or SMS is the minimum necessary (POPIA): no patient name or PatientID in an
e-mail, nothing that identifies a patient in an SMS. The details are behind the sign-in the link
leads to.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from plugin import i18n
from plugin.store.outbox import NewMessage

__all__ = ["NewMessage", "StudyNotice", "share_messages", "study_ready_messages", "welcome_messages"]

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
DOCTOR_PAGE = "/gate/doctor"
NOT_GIVEN = "not given"
MAX_SMS_PRACTICE = 40
# Printable ASCII outside the GSM 03.38 basic alphabet (each costs two characters, or is missing).
_NOT_GSM_BASIC = re.compile(r"[`\[\\\]^{|}~\x00-\x1f\x7f]")  # and control characters (ESC shifts GSM-7)
_TYPOGRAPHY = str.maketrans({"\u2013": "-", "\u2014": "-", "\u2018": "'", "\u2019": "'", "\u201c": '"',
                             "\u201d": '"'})

_templates = Environment(loader=FileSystemLoader(TEMPLATES),
                         autoescape=select_autoescape(enabled_extensions=("html",), disabled_extensions=("txt",),
                                                      default=True),
                         trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, auto_reload=False)


@dataclass(frozen=True)
class StudyNotice:
    """What a "study ready" message may say about the study (no patient in it)."""

    study_uid: str
    orthanc_study_id: str
    study_date: str  # DICOM DA (YYYYMMDD) or ""
    modalities: tuple[str, ...]
    description: str
    accession_number: str


def study_ready_messages(doctor_id: int, email: str, mobile: str, study: StudyNotice, public_url: str,
                         practice_name: str) -> list[NewMessage]:
    """An e-mail if the doctor has an address, an SMS if they have a mobile number. Keyed
    `study-ready:{study_uid}:{doctor_id}:{channel}`: each goes once per study and doctor."""
    link = public_url.rstrip("/") + DOCTOR_PAGE
    key = f"study-ready:{study.study_uid}:{doctor_id}"
    messages = []
    if email:
        subject = f"{_one_line(practice_name)}: a new study is ready for you"
        context = {"subject": subject, "practice_name": practice_name, "link": link,
                   "study_date": _date(study.study_date), "modalities": ", ".join(study.modalities) or NOT_GIVEN,
                   "description": study.description or NOT_GIVEN,
                   "accession_number": study.accession_number or NOT_GIVEN}
        messages.append(NewMessage(f"{key}:email", "email", "study_ready", email, subject,
                                   _render("study_ready.txt", context), _render("study_ready.html", context),
                                   study.study_uid, doctor_id))
    if mobile:
        text = f"{_sms_safe(practice_name)}: a new study is ready for you. Open {link}"
        messages.append(NewMessage(f"{key}:sms", "sms", "study_ready", mobile, "", text, "", study.study_uid,
                                   doctor_id))
    return messages


def welcome_messages(doctor_id: int, email: str, display_name: str, set_password_url: str | None,
                     public_url: str, practice_name: str, *, username: str | None = None,
                     link_hours: float | None = None) -> list[NewMessage]:
    """The welcome e-mail of a doctor's new account: with a link to choose a password (a local
    account), or without (a directory account). None without an address.

    Keyed `welcome:{doctor_id}:{hash of the address and login}`: one welcome per doctor, address
    and login, so a doctor given a new address is welcomed there, and one given a login after being
    welcomed without gets the welcome with its link; the key holds neither in clear.
    """
    if not email:
        return []
    subject = f"{_one_line(practice_name)}: your image portal account"
    context = {"subject": subject, "practice_name": practice_name, "display_name": display_name or "Doctor",
               "username": username, "set_password_url": set_password_url,
               "link_hours": f"{link_hours:g}" if link_hours else None,
               "link": public_url.rstrip("/") + DOCTOR_PAGE}
    keyed = email.strip().lower() + ("\n" + username if username else "")
    address_hash = hashlib.sha256(keyed.encode()).hexdigest()[:24]
    return [NewMessage(f"welcome:{doctor_id}:{address_hash}", "email", "welcome", email, subject,
                       _render("welcome.txt", context), _render("welcome.html", context), None, doctor_id)]


def _render(name: str, context: dict[str, object]) -> str:
    return _templates.get_template(f"email/{name}").render(**context)


def _date(value: str) -> str:
    """DICOM's YYYYMMDD as YYYY-MM-DD (unambiguous in every locale)."""
    if re.fullmatch(r"[0-9]{8}", value):
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value or NOT_GIVEN


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _sms_safe(text: str) -> str:
    """Plain ASCII within the GSM basic alphabet, so an SMS stays one 160-character part."""
    return _sms_safe_text(text)[:MAX_SMS_PRACTICE].strip() or "Orthanc Gate"


def share_messages(share_id: int, email: str, mobile: str, link: str, expires_at: float, language: str,
                   practice_name: str, has_password: bool, *, reminder: bool = False) -> list[NewMessage]:
    """A patient's share link (or its reminder before expiry), in the share's language: an e-mail to
    the address and an SMS to the number given. Neither holds the patient's name or any ID number;
    the password, if any, never travels with the link. Keyed `share:{id}:{channel}` (a reminder:
    `share-reminder:{id}:{channel}`), so each goes once."""
    _ = i18n.gettext_for(language)
    expires = i18n.day(expires_at, language)
    kind = "share_reminder" if reminder else "share"
    key = f"share-reminder:{share_id}" if reminder else f"share:{share_id}"
    practice = _one_line(practice_name)
    messages = []
    if email:
        subject = (_("%(practice)s: your image link expires soon") if reminder
                   else _("%(practice)s: your medical images")) % {"practice": practice}
        context = {"subject": subject, "practice_name": practice_name, "link": link, "expires": expires,
                   "has_password": has_password, "lang": language}
        env = i18n.environment(language)
        messages.append(NewMessage(f"{key}:email", "email", kind, email, subject,
                                   env.get_template(f"email/{kind}.txt").render(**context),
                                   env.get_template(f"email/{kind}.html").render(**context)))
    if mobile:
        template = (_("%(practice)s: reminder, your link to your medical images stops working on %(expires)s: "
                      "%(link)s") if reminder
                    else _("%(practice)s: your medical images are ready. View them until %(expires)s: %(link)s"))
        text = template % {"practice": _sms_safe(practice_name), "expires": _sms_safe_text(expires), "link": link}
        messages.append(NewMessage(f"{key}:sms", "sms", kind, mobile, "", text, ""))
    return messages


def _sms_safe_text(text: str) -> str:
    """Any text of an SMS (a date in Afrikaans or isiZulu) in the GSM basic alphabet's ASCII."""
    ascii_text = unicodedata.normalize("NFKD", text.translate(_TYPOGRAPHY)).encode("ascii", "ignore").decode()
    return _NOT_GSM_BASIC.sub("", _one_line(ascii_text))
