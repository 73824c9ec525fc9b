"""The share pages' message catalogues: every message babel.cfg extracts (and the four SMS/subject
texts of plugin/notify/messages.py, even before that file holds them) is translated into Afrikaans
and isiZulu, with the English placeholders, and the catalogues compile."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from plugin import i18n

ROOT = Path(__file__).resolve().parents[2]
TRANSLATED = ("af", "zu")
SUBJECT = "%(practice)s: your medical images"
REMINDER_SUBJECT = "%(practice)s: your image link expires soon"
SMS = "%(practice)s: your medical images are ready. View them until %(expires)s: %(link)s"
REMINDER_SMS = "%(practice)s: reminder, your link to your medical images stops working on %(expires)s: %(link)s"
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def extracted() -> dict[str, str | tuple[str, ...]]:
    """msgid (its singular, for a plural) -> the full id, for all babel.cfg maps plus the four
    messages.py texts (required by name, so the test holds while messages.py does not have them)."""
    with (ROOT / "babel.cfg").open(encoding="utf-8") as mapping:
        method_map, options_map = parse_mapping_cfg(mapping)
    found: dict[str, str | tuple[str, ...]] = {}
    for _filename, _lineno, message, _comments, _context in extract_from_dir(ROOT, method_map, options_map):
        found[message[0] if isinstance(message, tuple) else message] = message
    for msgid in (SUBJECT, REMINDER_SUBJECT, SMS, REMINDER_SMS):
        found.setdefault(msgid, msgid)
    return found


MESSAGES = extracted()


def catalog(lang: str) -> Catalog:
    with (ROOT / "plugin" / "translations" / lang / "LC_MESSAGES" / "messages.po").open("rb") as po:
        return read_po(po, locale=lang)


def forms(value: str | tuple[str, ...]) -> tuple[str, ...]:
    return value if isinstance(value, tuple) else (value,)


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def test_extraction_finds_the_templates_messages() -> None:
    assert "View my images" in MESSAGES and "This link no longer works" in MESSAGES
    assert MESSAGES["The practice has shared %(num)d study with you."] == (
        "The practice has shared %(num)d study with you.", "The practice has shared %(num)d studies with you.")
    assert "Open your images:" in MESSAGES  # email/share.txt
    assert len(MESSAGES) > 50


@pytest.mark.parametrize("lang", TRANSLATED)
def test_every_message_is_translated(lang: str) -> None:
    translations = catalog(lang)
    assert translations.num_plurals == 2 and translations.plural_expr == "(n != 1)"
    problems = []
    for msgid, full in MESSAGES.items():
        message = translations.get(full)
        if message is None:
            problems.append(f"missing: {msgid}")
        elif message.fuzzy or not all(forms(message.string)):
            problems.append(f"untranslated or fuzzy: {msgid}")
    assert problems == []
    assert not translations.fuzzy  # a fuzzy header would be skipped by msgfmt, plural forms and all


@pytest.mark.parametrize("lang", TRANSLATED)
def test_translations_keep_the_placeholders(lang: str) -> None:
    translations = catalog(lang)
    for msgid, full in MESSAGES.items():
        message = translations.get(full)
        if message is None:
            continue  # reported by test_every_message_is_translated
        # Both languages have two plural forms, like English: msgstr[0] pairs with msgid, [1] with msgid_plural.
        for english, translated in zip(forms(full), forms(message.string), strict=True):
            assert placeholders(translated) == placeholders(english), (lang, msgid, translated)


@pytest.mark.parametrize("lang", TRANSLATED)
@pytest.mark.parametrize("msgid", [SMS, REMINDER_SMS])
def test_sms_translations_are_plain_ascii(lang: str, msgid: str) -> None:
    text = catalog(lang).get(msgid).string
    assert text.isascii(), text
    assert not re.search(r"[`\[\\\]^{|}~]", text)  # ASCII outside the GSM basic alphabet


def test_the_catalogues_compile_and_translate() -> None:
    assert i18n.translations("af").gettext("View my images") == "Bekyk my beelde"
    assert i18n.translations("zu").gettext("View my images") == "Buka izithombe zami"
    assert i18n.translations("af").ngettext("The practice has shared %(num)d study with you.",
                                            "The practice has shared %(num)d studies with you.",
                                            2) == "Die praktyk het %(num)d ondersoeke met u gedeel."
    assert i18n.translations("af").gettext(SUBJECT) % {"practice": "X"} == "X: u mediese beelde"
    assert i18n.translations("en").gettext("View my images") == "View my images"


@pytest.mark.parametrize(("code", "expected"), [
    (None, "en"), ("", "en"), ("xx", "en"), ("fr", "en"), ("en", "en"), ("af", "af"), ("zu", "zu"),
    ("AF ", "af"), (" Zu", "zu"), ("af-ZA", "en"),
])
def test_language_or_default(code: str | None, expected: str) -> None:
    assert i18n.language_or_default(code) == expected
