"""The share page's languages: Babel message catalogues (English, Afrikaans, isiZulu) and dates.

The catalogues live as `.po` files under plugin/translations/ (the source of truth, reviewed as text);
they are compiled in memory when first used, so there is no build step and no binary file to keep in
step. English is the source language: its catalogue is the identity.
"""

from __future__ import annotations

import datetime as dt
import functools
import gettext
import io
from pathlib import Path

from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from jinja2 import Environment, FileSystemLoader, select_autoescape

TRANSLATIONS = Path(__file__).resolve().parent / "translations"
DOMAIN = "messages"
DEFAULT_LANGUAGE = "en"
# Code -> the language's own name, in the order the page offers them.
LANGUAGES: dict[str, str] = {"en": "English", "af": "Afrikaans", "zu": "isiZulu"}


def language_or_default(code: str | None) -> str:
    """A supported language code, or English for anything else (absent, unknown, odd case)."""
    code = (code or "").strip().lower()
    return code if code in LANGUAGES else DEFAULT_LANGUAGE


@functools.cache
def translations(code: str) -> gettext.NullTranslations:
    """The compiled catalogue of a language (English: none needed)."""
    code = language_or_default(code)
    if code == DEFAULT_LANGUAGE:
        return gettext.NullTranslations()
    path = TRANSLATIONS / code / "LC_MESSAGES" / f"{DOMAIN}.po"
    with path.open("rb") as po:
        catalog = read_po(po, locale=code, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def gettext_for(code: str):  # noqa: ANN201 - the gettext callable
    return translations(code).gettext


def day(epoch: float, code: str) -> str:
    """A date as people of that language write it in full ("4 Desember 2026")."""
    return format_date(_local(epoch), "long", locale=language_or_default(code))


def moment(epoch: float, code: str) -> str:
    """A date and time, to the minute, in that language's way."""
    code = language_or_default(code)
    when = _local(epoch)
    return f"{format_date(when, 'long', locale=code)}, {when:%H:%M}"


def dicom_day(value: str, code: str) -> str:
    """A DICOM date (YYYYMMDD) in that language's way; anything else as it is."""
    try:
        parsed = dt.date(int(value[:4]), int(value[4:6]), int(value[6:8])) if len(value) == 8 else None
    except ValueError:
        parsed = None
    return format_date(parsed, "long", locale=language_or_default(code)) if parsed else value


def _local(epoch: float) -> dt.datetime:
    """The server's local time (South African practices run their servers on SAST)."""
    return dt.datetime.fromtimestamp(epoch)


TEMPLATES = Path(__file__).resolve().parent / "templates"


@functools.cache
def environment(code: str) -> Environment:
    """The templates rendered in one language: `{% trans %}` and `_()` read that language's catalogue.

    One environment per language (three in all), so that no render changes what another thread's
    render reads. HTML is autoescaped; `.txt` templates (e-mail bodies) are not.
    """
    env = Environment(loader=FileSystemLoader(TEMPLATES), extensions=["jinja2.ext.i18n"],
                      autoescape=select_autoescape(enabled_extensions=("html",), disabled_extensions=("txt",),
                                                   default=True),
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, auto_reload=False)
    env.install_gettext_translations(translations(code), newstyle=True)
    env.globals["LANGUAGES"] = LANGUAGES
    return env
