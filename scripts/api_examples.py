"""Real requests and answers for docs/api.md: starts a throw-away Orthanc with the Gate (as the test
suite does), calls each route of the JSON API and prints what was sent and what came back, long
secrets shortened. Run: .venv/bin/python scripts/api_examples.py > /tmp/examples.md"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path

import pyotp
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import ADMIN, SAMPLES, start_gate, storescu  # noqa: E402

LONG = re.compile(r"[A-Za-z0-9_-]{30,}")


def short(text: str) -> str:
    return LONG.sub(lambda m: m.group(0)[:8] + "...", text)


def trim(value: object) -> object:
    """Long lists shortened to their first two items (an example shows the shape, not every row)."""
    if isinstance(value, list):
        kept = [trim(item) for item in value[:2]]
        return kept + (["..."] if len(value) > 2 else [])
    if isinstance(value, dict):
        return {key: trim(item) for key, item in value.items()}
    return value


def pretty(value: object) -> str:
    text = json.dumps(trim(value), indent=2)
    # Lists of plain values on one line.
    plain = r'(?:"[^"\n]*"|-?[0-9.]+|true|false|null)'
    return re.sub(rf"\[\s*({plain}(?:,\s*{plain})*)\s*\]",
                  lambda m: "[" + re.sub(r",\s*", ", ", m.group(1)) + "]", text)


def show(method: str, path: str, answer: requests.Response, body: object = None, headers: str = "") -> None:
    print(f"#### {method} {path}\n")
    print("```http")
    print(f"{method} {path} HTTP/1.1" + (f"\n{headers}" if headers else ""))
    if body is not None:
        print("Content-Type: application/json\n\n" + json.dumps(body) if not isinstance(body, str) else "\n" + body)
    print("```\n```http")
    print(f"HTTP/1.1 {answer.status_code}")
    kind = answer.headers.get("Content-Type", "")
    if kind.startswith("application/json"):
        print("Content-Type: application/json\n\n" + short(pretty(answer.json())))
    else:
        print(f"Content-Type: {kind}\n\n" + short(answer.text[:400]))
    print("```\n")


def main() -> None:
    server = start_gate(Path(tempfile.mkdtemp()), gate={"MfaRequiredRoles": ["admin"]})
    try:
        storescu(server.proc.dicom_port, sorted(SAMPLES.glob("*.dcm")))
        bearer = f"Authorization: Bearer {server.admin_key[:8]}..."

        def admin(method: str, path: str, body: object = None, **kwargs) -> requests.Response:
            answer = server.admin(method, path, json=body, **kwargs) if body is not None and not isinstance(body, str) \
                else server.admin(method, path, data=body, **kwargs)
            show(method, path, answer, body, bearer)
            return answer

        # Sign-in as a browser-style script: JSON login, then the CSRF token on state changes.
        http = requests.Session()
        login = http.post(server.url("/gate/login"), json={"username": ADMIN, "password": "admin password 123"})
        show("POST", "/gate/login", login, {"username": ADMIN, "password": "...", "otp": ""})
        csrf = login.json()["csrf_token"]
        page = http.get(server.url("/gate/mfa")).text
        secret = re.search(r'class="secret">([A-Z2-7]+)<', page).group(1)
        enrol = http.post(server.url("/gate/mfa"), json={"csrf_token": csrf, "code": pyotp.TOTP(secret).now()})
        show("POST", "/gate/mfa", enrol, {"csrf_token": "...", "code": "123456"})
        show("GET", "/gate/api/me", http.get(server.url("/gate/api/me")), None, "Cookie: gate_session=...")
        show("GET", "/gate/health", requests.get(server.url("/gate/health"), timeout=10))

        admin("GET", "/gate/api/users")
        admin("POST", "/gate/api/users", {"username": "drdube", "roles": ["referring_doctor"],
                                          "email": "dube@example.org", "display_name": "Dr T Dube",
                                          "password": "quiet-river-stone-81"})
        admin("GET", "/gate/api/users/drdube")
        admin("PUT", "/gate/api/users/drdube", {"display_name": "Dr Thabo Dube"})
        admin("POST", "/gate/api/users/drdube/unlock", "")
        admin("DELETE", "/gate/api/users/drdube/sessions")
        csv_body = "username,email,display_name,roles\nclerk1,clerk1@example.org,Clerk One,billing\n"
        show("POST", "/gate/api/users/import",
             server.admin("POST", "/gate/api/users/import", data=csv_body,
                          headers={"Content-Type": "text/csv", "X-Dry-Run": "1"}),
             csv_body, bearer + "\nContent-Type: text/csv\nX-Dry-Run: 1")
        key = http.post(server.url("/gate/api/api-keys"), headers={"X-CSRF-Token": csrf},
                        json={"name": "ris-sync", "user": "drdube"})
        show("POST", "/gate/api/api-keys", key, {"name": "ris-sync", "user": "drdube"},
             "Cookie: gate_session=...\nX-CSRF-Token: ...")
        admin("DELETE", f"/gate/api/api-keys/{key.json()['id']}")
        mfa_reset = http.post(server.url("/gate/api/users/drdube/mfa-reset"), headers={"X-CSRF-Token": csrf},
                              json={})
        show("POST", "/gate/api/users/drdube/mfa-reset", mfa_reset, {}, "Cookie: gate_session=...\nX-CSRF-Token: ...")

        doctor = admin("POST", "/gate/api/doctors", {"hpcsa_number": "MP0123456", "title": "Dr", "first_name": "Sipho",
                                                     "last_name": "Nkosi", "email": "nkosi@example.org",
                                                     "mobile": "082 555 1234", "aliases": ["NKOSI^S"]}).json()
        admin("GET", "/gate/api/doctors?q=nkosi")
        admin("GET", f"/gate/api/doctors/{doctor['id']}")
        admin("PUT", f"/gate/api/doctors/{doctor['id']}", {"practice": "Rosebank Radiology"})
        admin("POST", f"/gate/api/doctors/{doctor['id']}/sign-in", {"username": "drnkosi2"})
        admin("POST", "/gate/api/doctors", {"hpcsa_number": "12345", "last_name": "X"})

        grant = admin("POST", "/gate/api/grants", {"user": "drdube", "study_uid": "1.2.826.0.1.3680043.10.1192.1",
                                                   "level": "download", "expires_at": "2027-06-30T17:00:00+02:00"})
        admin("POST", "/gate/api/grants/bulk", {"doctor": doctor["id"], "level": "view_only",
                                                "query": {"PatientID": "GATE-P002"}})
        admin("GET", "/gate/api/grants?user=drdube")
        admin("GET", "/gate/api/check?user=drdube&study=1.2.826.0.1.3680043.10.1192.1&level=view_only")
        admin("DELETE", f"/gate/api/grants/{grant.json()['id']}")

        share = admin("POST", "/gate/api/shares", {"studies": ["1.2.826.0.1.3680043.10.1192.1"], "valid_hours": 72,
                                                   "password": "Thandi-1990", "max_downloads": 3, "language": "zu"})
        admin("GET", "/gate/api/shares")
        admin("GET", f"/gate/api/shares/{share.json()['id']}")
        admin("DELETE", f"/gate/api/shares/{share.json()['id']}")

        admin("GET", "/gate/api/referrals")
        admin("GET", "/gate/api/review")
        admin("POST", "/gate/api/review/1/resolve", {"action": "dismiss", "note": "not ours"})
        admin("GET", "/gate/api/outbox?status=pending")
        admin("POST", "/gate/api/outbox/1/retry", "")

        admin("GET", "/gate/api/audit?user=drdube&limit=2")
        admin("GET", "/gate/api/audit/verify")
        admin("GET", "/gate/api/audit/export.csv?action=grant.create")
        admin("GET", "/gate/api/audit/patient-report?patient_id=GATE-P001")
        admin("GET", "/gate/api/audit/breach-report?user=drdube&from=2026-12-01&to=2026-12-31")
        out = http.post(server.url("/gate/logout"), headers={"X-CSRF-Token": csrf, "Accept": "application/json"})
        show("POST", "/gate/logout", out, None, "Cookie: gate_session=...\nX-CSRF-Token: ...\nAccept: application/json")
    finally:
        server.proc.stop()


if __name__ == "__main__":
    main()
