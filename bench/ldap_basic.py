"""Directory (LDAP) users over HTTP Basic: is the remembered password check as cheap as an API key?

One slapd (tests/ldap) and one Orthanc with the Gate, whose Ldap section maps the directory's
"PACS Admins" group to the admin role. The directory user adm1 downloads one small instance
(GET /instances/{id}/file) with wrk (16 connections, 2 threads), alternately with HTTP Basic and
with an API key of the same account, in --rounds interleaved rounds; the medians are kept.

Basic stays cheap because a verified password is remembered (as a keyed hash) for
BasicCredentialCacheSeconds, so the directory is asked once, not per request; the bench uses the
shipped 60 s. The last line is `ldap_basic_vs_api_key=R` (R = Basic / API key requests per second).
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import requests  # noqa: E402

from bench.gate_throughput import SAMPLE, wrk  # noqa: E402
from tests.harness import OrthancProcess  # noqa: E402
from tests.ldap_server import GROUPS_DN, PEOPLE_DN, SERVICE_DN, SERVICE_PASSWORD, LdapServer  # noqa: E402

USER, PASSWORD = "adm1", "adm1 password 123"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rates: dict[str, list[float]] = {"basic": [], "api key": []}
    with tempfile.TemporaryDirectory(prefix="gate-ldap-bench-") as tmp:
        ldap = LdapServer(Path(tmp) / "slapd").start()
        (Path(tmp) / "ldap.secret").write_text(SERVICE_PASSWORD)
        gate = OrthancProcess(Path(tmp) / "gate", gate={
            "MfaRequiredRoles": [],  # Basic is refused to accounts that must prove a one-time code
            "Ldap": {"Servers": [ldap.url], "BindDn": SERVICE_DN, "BindPasswordFile": str(Path(tmp) / "ldap.secret"),
                     "UserBase": PEOPLE_DN, "GroupBase": GROUPS_DN, "GroupRoles": {"PACS Admins": "admin"}}})
        try:
            gate.start()
            basic = "Authorization: Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            # The first Basic request signs adm1 in from the directory and creates their account row.
            answer = requests.post(gate.url("/instances"), data=SAMPLE.read_bytes(), auth=(USER, PASSWORD), timeout=30)
            answer.raise_for_status()
            url = gate.url(f"/instances/{answer.json()['ID']}/file")
            key = gate.create_api_key("bench", USER)
            headers = {"basic": basic, "api key": f"Authorization: Bearer {key}"}
            for header in headers.values():
                wrk(url, 1, header)  # warm-up
            for _ in range(args.rounds):
                for case, header in headers.items():
                    rates[case].append(wrk(url, args.seconds, header))
        finally:
            gate.stop()
            ldap.stop()
    median = {case: statistics.median(values) for case, values in rates.items()}
    print(f"\n{USER} (directory account) GET /instances/ID/file, "
          f"median of {args.rounds} round(s) of {args.seconds:g} s")
    for case, rate in median.items():
        print(f"  {case:<8} {rate:>8.0f} requests/s")
    print(f"ldap_basic_vs_api_key={median['basic'] / median['api key']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
