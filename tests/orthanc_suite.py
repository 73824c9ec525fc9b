"""Orthanc's own integration tests (orthanc-tests) run as an admin through the Gate and against plain
Orthanc, in the same run, so that any test the Gate breaks shows up as a difference.

Not part of `make test` (the suite needs its repository at the tag of the Orthanc under test, and
takes minutes). By hand:

    .venv/bin/python tests/orthanc_suite.py --suite DIR [--python PY] [--dicomweb] [TestName ...]

DIR is a checkout of orthanc-tests at the tag of the Orthanc under test (e.g. Orthanc-1.10.1; the
tag's Tests/*.py may need lib2to3 to run on Python 3), PY a Python with httplib2 and pillow. The
tested servers get the options of the suite's GenerateConfigurationForTests.py that its tests rely
on; the Gate's admin signs in with Basic (MFA is not required of the admin role here).

With --dicomweb, the suite's DICOMweb plugin tests (Plugins/DicomWeb/Run.py and DicomWeb.py, converted
like Tests/: `python3 -m lib2to3 -w -n Plugins/DicomWeb`) are run instead, the same way: plain Orthanc
with the DICOMweb plugin, then the Gate (Python plugin first, then DICOMweb, as tests/harness.py lists
them), configured identically. That suite needs no second Orthanc: its DICOMweb server "sample" is the
server under test itself (it reads back over DICOMweb what it has just uploaded), and test_server_get
checks that server's URL is literally http://localhost:8042/dicom-web/, so each server in turn listens
on --dicomweb-port (8042 by default, which must be free) and the suite is pointed at "localhost", the
host the plugin's (and the Gate's) RetrieveURLs then name and the tests strip as a prefix. Each run's
unittest output and Orthanc log are left in /tmp/orthanc-suite[-dicomweb]-{plain,gate}[-orthanc].log.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.harness import ENTRY, OrthancProcess  # noqa: E402

USER, PASSWORD = "alice", "orthanctest-suite"  # the tested servers; the ancillary keeps its own
LUA_TOOLS_PORTS = {"rest": 5000, "dicom": 5001}  # the suite's own ancillary Orthanc (Run.py)
# The suite's httplib2 sends credentials only after a 401 challenge, which Orthanc's request filter
# cannot send (API.md: clients of Orthanc's routes send them up front); so they are sent up front.
UP_FRONT_CREDENTIALS = """
import base64, runpy, sys, httplib2
_request = httplib2.Http.request
def request(self, uri, method="GET", body=None, headers=None, *args, **kwargs):
    headers = dict(headers or {})
    if self.credentials.credentials and "authorization" not in {k.lower() for k in headers}:
        _domain, user, password = self.credentials.credentials[0]
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    return _request(self, uri, method, body, headers, *args, **kwargs)
httplib2.Http.request = request
sys.argv = sys.argv[1:]  # [Tests/Run.py or Plugins/DicomWeb/Run.py, its arguments...]
sys.path.insert(0, sys.argv[0].rpartition("/")[0])
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def suite_config(dicom_port: int) -> dict:
    """What GenerateConfigurationForTests.py sets that the tests depend on."""
    return {
        "DefaultEncoding": "Utf8", "AllowFindSopClassesInStudy": False, "DicomAet": "ORTHANC",
        "DicomAssociationCloseDelay": 0, "HttpCompressionEnabled": False, "LogExportedResources": True,
        "DicomModalities": {"orthanc": ["ORTHANCTEST", "127.0.0.1", LUA_TOOLS_PORTS["dicom"]],
                            "self": ["ORTHANC", "127.0.0.1", dicom_port]},
        "OrthancPeers": {"peer": [f"http://127.0.0.1:{LUA_TOOLS_PORTS['rest']}/", "alice", "orthanctest"]},
        "OverwriteInstances": True, "JobsHistorySize": 1000, "SynchronousCMove": False,
        "MediaArchiveSize": 1, "SaveJobs": False, "ExecuteLuaEnabled": True, "HttpTimeout": 2,
        "SyncStorageArea": False, "WebDavEnabled": True, "WebDavDeleteAllowed": True,
        "WebDavUploadAllowed": True, "CheckRevisions": True, "DicomAlwaysAllowFind": True,
        "DicomAlwaysAllowMove": True, "DicomAlwaysAllowGet": True,
        "Dictionary": {"4321,1012": ["LO", "RadioButton3", 1, 1, "RadioLogic"],
                       "4321,1013": ["LO", "RadioButton4", 1, 1]},
        "DefaultPrivateCreator": "Lunit",
        "DicomWeb": {"Enable": True, "Servers": {"sample": ["http://127.0.0.1:5000/dicom-web/", "alice",
                                                           "orthanctest"]}},
    }


def dicomweb_config(dicom_port: int, http_port: int) -> dict:
    """What GenerateConfigurationForTests.py sets that Plugins/DicomWeb/Run.py depends on: the main
    suite's options, its private dictionary (test_bitbucket_issue_168 reads Lunit's 0009,1001) and the
    DICOMweb server "sample", the tested server itself with the tested credentials."""
    config = suite_config(dicom_port)
    config["Dictionary"].update({"0009,1001": ["DS", "Abnormality score", 1, 1, "Lunit"],
                                 "0009,0010": ["LO", "Private data element", 1, 1, "Lunit"]})
    config["CaseSensitivePN"] = False
    config["DicomWeb"] = {"Enable": True, "Servers": {
        "sample": [f"http://localhost:{http_port}/dicom-web/", USER, PASSWORD]}}
    return config


def run_suite(server: OrthancProcess, suite: Path, python: str, tests: list[str], dicomweb: bool = False) -> str:
    if dicomweb:
        command = [python, "-c", UP_FRONT_CREDENTIALS, "Plugins/DicomWeb/Run.py", "--server=localhost",
                   f"--rest={server.http_port}", f"--username={USER}", f"--password={PASSWORD}", "--force",
                   "--", *tests]
    else:
        command = [python, "-c", UP_FRONT_CREDENTIALS, "Tests/Run.py", "--server=127.0.0.1",
                   f"--rest={server.http_port}", f"--dicom={server.dicom_port}", f"--username={USER}",
                   f"--password={PASSWORD}", "--force", "--orthanc=/usr/sbin/Orthanc", "--", *tests]
    done = subprocess.run(command, cwd=suite, capture_output=True, text=True, timeout=3600)
    return done.stdout + done.stderr


def outcomes(output: str) -> dict[str, str]:
    """test name -> ok/FAIL/ERROR/skipped, from unittest's verbose lines."""
    found = {}
    for line in output.splitlines():
        match = re.match(r"(test_\w+) \(.*?\) \.\.\. (ok|FAIL|ERROR|skipped.*|expected failure)", line)
        if match:
            found[match.group(1)] = match.group(2).split()[0]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", required=True, type=Path)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--dicomweb", action="store_true",
                        help="run the DICOMweb plugin's tests (Plugins/DicomWeb/Run.py) instead of Tests/Run.py")
    parser.add_argument("--dicomweb-port", type=int, default=8042,
                        help="HTTP port of the tested server with --dicomweb (the suite expects 8042)")
    parser.add_argument("tests", nargs="*", help="e.g. Orthanc.test_metadata (all when none)")
    args = parser.parse_args()
    results = {}
    prefix = "orthanc-suite-dicomweb" if args.dicomweb else "orthanc-suite"
    with tempfile.TemporaryDirectory() as tmp:
        for name, script in (("plain", None), ("gate", ENTRY)):
            server = OrthancProcess(Path(tmp) / name, gate={"MfaRequiredRoles": []}, script=script)
            if args.dicomweb:
                server.http_port = server.config["HttpPort"] = args.dicomweb_port
                server.config.update(dicomweb_config(server.dicom_port, server.http_port))
            else:
                server.config.update(suite_config(server.dicom_port))
            if script is None:
                server.config.update({"AuthenticationEnabled": True, "RegisteredUsers": {USER: PASSWORD}})
            server.config["DicomModalities"]["self"][2] = server.dicom_port
            server.write_config()
            if script is not None:
                server.gatectl("db-upgrade")
                server.gatectl("create-user", USER, "--role", "admin", "--password-stdin", "--no-password-change",
                               stdin=PASSWORD + "\n")
            server.start()
            try:
                output = run_suite(server, args.suite, args.python, ["-v", *args.tests], args.dicomweb)
            finally:
                server.stop()
            (Path(tmp).parent / f"{prefix}-{name}.log").write_text(output)
            (Path(tmp).parent / f"{prefix}-{name}-orthanc.log").write_text(server.log_text())
            results[name] = outcomes(output)
    differ = sorted(t for t in set(results["plain"]) | set(results["gate"])
                    if results["plain"].get(t) != results["gate"].get(t))
    for test in differ:
        print(f"{test}: plain={results['plain'].get(test)} gate={results['gate'].get(test)}")
    print(f"tests={len(results['gate'])} differ={len(differ)} "
          f"plain_ok={sum(v == 'ok' for v in results['plain'].values())} "
          f"gate_ok={sum(v == 'ok' for v in results['gate'].values())}")
    if not results["gate"] or not results["plain"]:
        print(f"no test ran: see /tmp/{prefix}-*.log")
        return 2
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
