"""The patient share pages and e-mails as rendered in English, Afrikaans and isiZulu: what they say,
what they must never hold (the token, inline style, script), and how big they are."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from jinja2 import Environment, StrictUndefined

from plugin import i18n

LANGS = ("en", "af", "zu")
ROOT = Path(__file__).resolve().parents[2]
CSS = ROOT / "plugin" / "static" / "share.css"
TOKEN = "Xq7fT2mN9pLr4sVb8wZc1yHd6kJe3gAu"  # what a link's token looks like; never given to a template
PRACTICE = SimpleNamespace(name="Sandton Radiology & Imaging", phone="+27 11 555 0100",
                           email="reception@sandtonrad.example.co.za", address="12 Rivonia Road\nSandton 2196")
# A word of each language that the landing page must show (proof the catalogue was used).
LANDING_WORD = {"en": "Your medical images", "af": "mediese beelde", "zu": "izithombe"}


def strict(lang: str) -> Environment:
    """The page environment of a language, but failing on any variable the context does not give:
    the templates need nothing beyond their documented context. (No cache: an overlay would share
    the parent's compiled templates, which use its lenient Undefined.)"""
    return i18n.environment(lang).overlay(undefined=StrictUndefined, cache_size=0)


def render(lang: str, name: str, **context: object) -> str:
    base = {"lang": lang, "lang_switch": True, "practice": PRACTICE}
    return strict(lang).get_template(name).render(**{**base, **context})


def landing_context(**changes: object) -> dict[str, object]:
    context = {"expires": "4 December 2026", "study_count": 3, "needs_password": True, "one_time": True,
               "downloads_left": 2, "error": None, "retry_minutes": 15, "form_lang": "af"}
    return {**context, **changes}


def study(n: int, previews: int = 4, report: bool = True) -> SimpleNamespace:
    return SimpleNamespace(
        date=f"{n} March 2026", modalities="CT, MR", description=f"CT abdomen and pelvis with contrast {n}",
        previews=[SimpleNamespace(url=f"/share/preview/1.2.826.0.1.3680043.8.498.{n}{i}?size=160",
                                  alt=f"Preview {i + 1} of study {n}") for i in range(previews)],
        report_url=f"/share/report/{n}" if report else None)


def log_entry(role: str, what: str = "viewed", name: str = "", practice: str = "") -> SimpleNamespace:
    return SimpleNamespace(when="5 March 2026, 14:02", role=role, name=name, practice=practice, what=what)


def studies_context(**changes: object) -> dict[str, object]:
    context = {"expires": "4 December 2026", "downloads_left": 2, "can_download": True,
               "csrf_token": "csrf-abc123", "download_error": None, "studies": [study(n) for n in (1, 2, 3)],
               "access_log": [log_entry("doctor", name="Dr T. Naidoo", practice="Rosebank Family Practice"),
                              log_entry("radiologist", "downloaded", name="Dr A. Botha"),
                              log_entry("patient")]}
    return {**context, **changes}


# Every share page with a realistic context (each also gets lang, lang_switch and practice).
PAGES = {
    "share/landing.html": landing_context(),
    "share/studies.html": studies_context(),
    "share/gone.html": {"reason": "expired"},
    "share/not_found.html": {},
    "share/throttled.html": {"retry_minutes": 5},
    "share/ended.html": {},
    "share/closed.html": {},
}


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("name", PAGES)
def test_every_page_is_small_self_contained_and_in_its_language(lang: str, name: str) -> None:
    html = render(lang, name, **PAGES[name])
    assert f'<html lang="{lang}">' in html
    assert not re.search(r"\sstyle\s*=", html, re.IGNORECASE)  # CSP: no inline style
    assert "<style" not in html.lower() and "<script" not in html.lower()
    assert not any(re.search(r"\son[a-z]+\s*=", tag, re.IGNORECASE) for tag in re.findall(r"<[^>]*>", html))
    assert 'href="/gate/static/share.css"' in html
    assert '<meta name="referrer" content="no-referrer">' in html
    assert "http://" not in html and "https://" not in html  # nothing external
    assert TOKEN not in html
    assert len(html.encode()) < 15_000


def test_the_stylesheet_is_small() -> None:
    assert CSS.stat().st_size < 6_000
    assert "overflow-wrap:anywhere" in CSS.read_text()


@pytest.mark.parametrize("lang", LANGS)
def test_the_language_switcher_marks_the_current_language(lang: str) -> None:
    html = render(lang, "share/ended.html")
    for code, name in i18n.LANGUAGES.items():
        current = ' aria-current="true"' if code == lang else ""
        assert f'<a href="?lang={code}" lang="{code}" hreflang="{code}"{current}>{name}</a>' in html
    assert "?lang=" not in render(lang, "share/ended.html", lang_switch=False)


def test_the_footer_shows_only_the_contacts_given() -> None:
    html = render("en", "share/closed.html")
    assert 'href="tel:+27115550100"' in html and 'href="mailto:reception@sandtonrad.example.co.za"' in html
    assert "Sandton Radiology &amp; Imaging" in html and "Questions? Contact the practice" in html
    bare = SimpleNamespace(name="Sandton Radiology", phone="", email="", address="")
    html = render("en", "share/closed.html", practice=bare)
    assert "tel:" not in html and "mailto:" not in html and "Address" not in html


@pytest.mark.parametrize("lang", LANGS)
def test_the_landing_page_posts_back_without_the_token(lang: str) -> None:
    html = render(lang, "share/landing.html", **landing_context())
    assert LANDING_WORD[lang] in html
    assert html.count("<form") == 1 and '<form method="post" action=""' in html
    assert '<input type="hidden" name="lang" value="af">' in html
    assert 'autocomplete="current-password"' in html and '<label for="password">' in html
    assert "/share/" not in html  # no link or path that could carry the token


def test_the_landing_page_in_afrikaans_and_isizulu() -> None:
    af = render("af", "share/landing.html", **landing_context())
    assert "Die praktyk het 3 ondersoeke met u gedeel." in af
    assert "Bekyk my beelde" in af and "Wagwoord" in af and "nog 2 keer" in af
    zu = render("zu", "share/landing.html", **landing_context(study_count=1))
    assert "zesihlolo esingu-1" in zu and "Buka izithombe zami" in zu and "Iphasiwedi" in zu


def test_the_landing_page_without_password_or_limits() -> None:
    html = render("en", "share/landing.html",
                  **landing_context(needs_password=False, one_time=False, downloads_left=None, study_count=1))
    assert 'type="password"' not in html and "View my images" in html
    assert "1 study with you" in html and "only once" not in html and "more time" not in html


def test_the_landing_page_errors() -> None:
    wrong = render("en", "share/landing.html", **landing_context(error="wrong_password"))
    assert "That password is not right. Please try again." in wrong and 'aria-invalid="true"' in wrong
    locked = render("en", "share/landing.html", **landing_context(error="locked", retry_minutes=15))
    assert "Too many wrong passwords. Try again in 15 minutes, or contact the practice." in locked
    assert "<form" not in locked
    assert "Probeer weer oor 15 minute" in render("af", "share/landing.html", **landing_context(error="locked"))


@pytest.mark.parametrize("lang", LANGS)
def test_only_the_first_preview_loads_eagerly(lang: str) -> None:
    html = render(lang, "share/studies.html", **studies_context())
    images = re.findall(r"<img [^>]*>", html)
    assert len(images) == 12
    assert "loading=" not in images[0]
    assert all('loading="lazy"' in image for image in images[1:])
    assert all('width="160" height="160"' in image and "alt=" in image for image in images)


def test_the_studies_page_shows_each_study() -> None:
    html = render("en", "share/studies.html", **studies_context(
        studies=[study(1), SimpleNamespace(date="", modalities="", description="", previews=[], report_url=None)]))
    assert "CT abdomen and pelvis with contrast 1" in html and "No description" in html
    assert html.count("Report (PDF)") == 1 and 'href="/share/report/1"' in html
    assert '<form method="post" action="/share/download">' in html and "Download all (ZIP)" in html
    assert html.count('<input type="hidden" name="csrf_token" value="csrf-abc123">') == 2
    assert '<form method="post" action="/share/close"' in html
    assert "You can download the images 2 more times." in html and "DICOM" in html


def test_the_download_limit() -> None:
    html = render("en", "share/studies.html", **studies_context(can_download=False, downloads_left=0))
    assert "/share/download" not in html and "The download limit of this link has been reached." in html
    html = render("en", "share/studies.html", **studies_context(can_download=False, download_error="limit"))
    assert html.count("The download limit of this link has been reached.") == 1 and 'role="alert"' in html
    html = render("en", "share/studies.html", **studies_context(downloads_left=None))
    assert "more time" not in html


def test_the_access_log() -> None:
    html = render("af", "share/studies.html", **studies_context())
    assert "Wie hierdie beelde oopgemaak het" in html
    assert "Dokter" in html and "Dr T. Naidoo" in html and "Rosebank Family Practice" in html
    assert "Radioloog" in html and "Afgelaai" in html and "Pasiënt" in html
    empty = render("en", "share/studies.html", **studies_context(access_log=[]))
    assert "Nobody else has opened them yet." in empty
    off = render("en", "share/studies.html", **studies_context(access_log=None))
    assert "Who has opened" not in off


@pytest.mark.parametrize("lang", LANGS)
def test_gone_says_why(lang: str) -> None:
    pages = {reason: render(lang, "share/gone.html", reason=reason)
             for reason in ("expired", "revoked", "used", "exhausted")}
    reasons = {re.search(r"</h1>\n<p>(.*?)</p>", html).group(1) for html in pages.values()}
    assert len(reasons) == 4
    assert all('href="#contact"' in html and 'id="contact"' in html for html in pages.values())


@pytest.mark.parametrize("lang", LANGS)
def test_not_found_depends_on_nothing_else(lang: str) -> None:
    plain = render(lang, "share/not_found.html")
    noisy = render(lang, "share/not_found.html", token=TOKEN, reason="revoked", error="locked", studies=[study(1)],
                   expires="4 December 2026", study_count=3, retry_minutes=5)
    assert plain == noisy
    assert "This link is not valid" in render("en", "share/not_found.html")


def test_the_other_pages_say_what_happened() -> None:
    assert "Try again in 5 minutes." in render("en", "share/throttled.html", retry_minutes=5)
    assert "Try again in 1 minute." in render("en", "share/throttled.html", retry_minutes=1)
    assert "Open the link in your message again to continue." in render("en", "share/ended.html")
    assert "You have closed your images on this device." in render("en", "share/closed.html")
    assert "Maak die skakel in u boodskap weer oop" in render("af", "share/ended.html")
    assert "Uzivalile izithombe zakho" in render("zu", "share/closed.html")


LINK = f"https://pacs.example.co.za/share/{TOKEN}"
EMAILS = ("email/share.txt", "email/share.html", "email/share_reminder.txt", "email/share_reminder.html")


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("name", EMAILS)
@pytest.mark.parametrize("has_password", [True, False])
def test_the_emails_hold_the_link_and_expiry_and_no_patient(lang: str, name: str, has_password: bool) -> None:
    # StrictUndefined: the templates can use nothing but these keys, so no patient detail can reach them.
    context = {"subject": "Sandton Radiology: your medical images", "practice_name": "Sandton Radiology",
               "link": LINK, "expires": "4 Desember 2026", "has_password": has_password, "lang": lang}
    text = strict(lang).get_template(name).render(**context)
    assert LINK in text and "4 Desember 2026" in text and "Sandton Radiology" in text
    password_note = {"en": "password", "af": "wagwoord", "zu": "iphasiwedi"}[lang]
    assert (password_note in text.lower()) == has_password
    if name.endswith(".html"):
        assert f'<html lang="{lang}">' in text and "<img" not in text and "<link" not in text


def test_the_reminder_says_when_the_link_stops() -> None:
    context = {"subject": "s", "practice_name": "Sandton Radiology", "link": LINK, "expires": "4 December 2026",
               "has_password": False, "lang": "en"}
    text = strict("en").get_template("email/share_reminder.txt").render(**context)
    assert "stops working on 4 December 2026" in text
    af = strict("af").get_template("email/share.html").render(**{**context, "lang": "af"})
    assert "Sandton Radiology het u mediese beelde met u gedeel." in af
