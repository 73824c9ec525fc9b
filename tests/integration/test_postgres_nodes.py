"""Two Orthanc nodes on one PostgreSQL: one Orthanc index (Debian's orthanc-postgresql), one storage
folder and one Gate store, as docs/deploy.md's compose file runs them.

Each node has its own state folder (audit spool, checkpoint copy) and the two share the key files.
The nodes start at the same moment on an empty store, so both run the migrations at once. Every
change is made through one node and checked through the other: a grant and its revocation, a
session and its end, a lockout, an API key and its revocation; the audit stays one chain while both
write; a node killed with SIGKILL loses no audit row of a request it answered; an upgrade run while
the nodes serve changes nothing.

The revocation lag is printed and written to var/artifacts/postgres-nodes/lag.json. 5 s is the
bound the deployment promises (GrantPollSeconds + DecisionCacheSeconds is 2 s by default): a
functional bound, asked of the defaults, not a speed goal.
"""

from __future__ import annotations

import http.client
import json
import ssl
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import ADMIN, ADMIN_PASSWORD, SAMPLES, TEST_GATE_CONFIG, postgres_rows
from tests.harness import REPO, OrthancProcess, free_port, shared_keys, storescu
from tests.postgres_server import PostgresServer

pytestmark = pytest.mark.integration

BOUND_SECONDS = 5.0  # what the deployment promises for a change made on the other node
ARTIFACTS = REPO / "var" / "artifacts" / "postgres-nodes"
SAMPLE_FILES = sorted(SAMPLES.glob("*.dcm"))
# The tests' doctors, each used on one node only where the audit is counted per node.
DOCTORS = {"drpair": "pair doctor password 1", "drkilled": "killed doctor password 1",
           "drlocked": "locked doctor password 1", "drload": "load doctor password 1"}
LOCKOUT_FAILURES = 5
PROXY_ADDRESS = "127.0.0.10"  # the TLS proxy's own address towards the nodes (Gate.TrustedProxies)
CLIENT_ADDRESS = "127.0.0.7"  # a browser's, behind the proxy


class Pair:
    def __init__(self, postgres: PostgresServer, a: OrthancProcess, b: OrthancProcess) -> None:
        self.postgres, self.a, self.b = postgres, a, b
        self.store_url = a.config["Gate"]["DatabaseUrl"]
        self.lags: dict[str, float] = {}

    def rows(self, query: str, params: tuple = ()) -> list[dict]:
        return postgres_rows(self.store_url, query, params)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory):
    postgres = PostgresServer().start()
    nodes: list[OrthancProcess] = []
    try:
        postgres.create_database("orthanc")
        postgres.create_database("gate")
        root = tmp_path_factory.mktemp("pg-pair")
        shared = root / "shared"
        # The defaults for everything that bounds how late a change reaches the other node.
        gate = {**TEST_GATE_CONFIG, "DatabaseUrl": postgres.url("gate"), "LockoutFailures": LOCKOUT_FAILURES,
                "TrustedProxies": [PROXY_ADDRESS], **shared_keys(shared)}
        nodes = [postgres.node(root, name, shared, "orthanc", gate) for name in ("node-a", "node-b")]
        # Both at once on an empty store and an empty index: each runs the Gate's migrations and
        # Orthanc's schema set-up at start.
        for node in nodes:
            node.start(wait=False)
        for node in nodes:
            node.wait_ready(60)
        a, b = nodes
        a.create_user(ADMIN, ["admin"], ADMIN_PASSWORD)
        for doctor, password in DOCTORS.items():
            a.create_user(doctor, ["referring_doctor"], password)
        yield Pair(postgres, a, b)
    finally:
        for node in nodes:
            node.stop()
        postgres.remove()


def _admin(node: OrthancProcess, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, node.url(path), auth=(ADMIN, ADMIN_PASSWORD), timeout=30, **kwargs)


def _until(check, what: str) -> float:
    """Seconds until check() holds, asked without pause as a client would; fails past the bound."""
    started = time.monotonic()
    while time.monotonic() - started < BOUND_SECONDS * 2:
        if check():
            return time.monotonic() - started
    pytest.fail(f"{what}: not within {BOUND_SECONDS * 2} s")


def _record_lag(pair: Pair, name: str, seconds: float) -> None:
    pair.lags[name] = round(seconds, 3)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "lag.json").write_text(json.dumps(pair.lags, indent=2) + "\n")
    print(f"{name}: {seconds:.2f} s")
    assert seconds <= BOUND_SECONDS, f"{name} took {seconds:.2f} s"


def test_both_nodes_came_up_together_on_one_migrated_store_and_one_index(pair: Pair):
    assert pair.rows("SELECT version_num FROM alembic_version") == [{"version_num": _head_revision()}]
    assert pair.rows("SELECT last_id FROM audit_head")[0]["last_id"] >= 0
    pushed = storescu(pair.b.dicom_port, SAMPLE_FILES)
    assert pushed.returncode == 0, pushed.stderr
    stored_on_b = set(_admin(pair.b, "GET", "/instances").json())
    assert len(stored_on_b) == len(SAMPLE_FILES)
    assert set(_admin(pair.a, "GET", "/instances").json()) == stored_on_b  # one index
    instance = sorted(stored_on_b)[0]
    assert _admin(pair.a, "GET", f"/instances/{instance}/file").content[128:132] == b"DICM"  # one storage


def test_a_grant_and_its_revocation_on_one_node_count_on_the_other(pair: Pair):
    doctor = ("drpair", DOCTORS["drpair"])
    instance = sorted(_admin(pair.a, "GET", "/instances").json())[0]
    patient_id = _admin(pair.a, "GET", f"/instances/{instance}/simplified-tags").json()["PatientID"]
    for made_on, read_on, direction in ((pair.a, pair.b, "a_to_b"), (pair.b, pair.a, "b_to_a")):
        url = read_on.url(f"/instances/{instance}/file")
        assert requests.get(url, auth=doctor, timeout=30).status_code == 403
        grant = _admin(made_on, "POST", "/gate/api/grants",
                       json={"user": doctor[0], "patient_id": patient_id, "level": "download"})
        assert grant.status_code == 201, grant.text
        _record_lag(pair, f"grant_{direction}_seconds",
                    _until(lambda url=url: requests.get(url, auth=doctor, timeout=30).status_code == 200,
                           "the grant reaching the other node"))
        assert _admin(made_on, "DELETE", f"/gate/api/grants/{grant.json()['id']}").status_code == 200
        _record_lag(pair, f"revocation_{direction}_seconds",
                    _until(lambda url=url: requests.get(url, auth=doctor, timeout=30).status_code == 403,
                           "the revocation reaching the other node"))


def test_a_session_made_on_one_node_works_on_the_other_until_signed_out(pair: Pair):
    browser = requests.Session()
    signed_in = browser.post(pair.a.url("/gate/login"), json={"username": "drpair", "password": DOCTORS["drpair"]},
                             timeout=30)
    assert signed_in.status_code == 200, signed_in.text
    assert browser.get(pair.b.url("/gate/api/me"), timeout=30).json()["username"] == "drpair"
    # The cookie alone, as a browser sends it to whichever node the proxy picks; node A has just
    # used it (and remembers who it is for IdentityCacheSeconds).
    cookie = {"gate_session": browser.cookies["gate_session"]}
    assert requests.get(pair.a.url("/gate/api/me"), cookies=cookie, timeout=30).status_code == 200
    out = browser.post(pair.b.url("/gate/logout"), headers={"X-CSRF-Token": signed_in.json()["csrf_token"]},
                       timeout=30, allow_redirects=False)
    assert out.status_code in (200, 303), out.text
    _record_lag(pair, "sign_out_b_to_a_seconds",
                _until(lambda: requests.get(pair.a.url("/gate/api/me"), cookies=cookie, timeout=30).status_code
                       == 401, "the sign-out reaching the other node"))


def test_wrong_passwords_on_both_nodes_count_towards_one_lockout(pair: Pair):
    wrong = ("drlocked", "not the password")
    for attempt in range(LOCKOUT_FAILURES):
        node = pair.a if attempt % 2 else pair.b
        assert requests.get(node.url("/gate/api/me"), auth=wrong, timeout=30).status_code in (401, 403)
    right = ("drlocked", DOCTORS["drlocked"])
    for node in (pair.a, pair.b):
        refused = requests.get(node.url("/gate/api/me"), auth=right, timeout=30)
        assert refused.status_code == 403 and refused.json()["error"] == "rate_limited", refused.text
    pair.a.gatectl("unlock", "drlocked")
    for node in (pair.b, pair.a):
        assert requests.get(node.url("/gate/api/me"), auth=right, timeout=30).status_code == 200


def test_an_api_key_made_through_one_node_works_on_the_other_until_revoked(pair: Pair):
    made = pair.a.gatectl("create-api-key", "pair-key", "--user", "drpair").stdout.strip().splitlines()
    key_id, key = made[-2].split()[2], made[-1]  # "API key <id> 'pair-key' for drpair ...", then the key
    bearer = {"Authorization": f"Bearer {key}"}
    assert requests.get(pair.b.url("/gate/api/me"), headers=bearer, timeout=30).json()["username"] == "drpair"
    assert _admin(pair.a, "DELETE", f"/gate/api/api-keys/{key_id}").status_code == 200
    _record_lag(pair, "api_key_revocation_a_to_b_seconds",
                _until(lambda: requests.get(pair.b.url("/gate/api/me"), headers=bearer, timeout=30).status_code
                       == 401, "the key's revocation reaching the other node"))


def test_the_audit_is_one_chain_that_verifies_while_both_nodes_write(pair: Pair):
    before = pair.rows("SELECT last_id FROM audit_head")[0]["last_id"]
    stop = threading.Event()
    answered = {"a": 0, "b": 0}

    def load(name: str, node: OrthancProcess, user: str, patient_id: str) -> None:
        # Admin changes are never coalesced: each is its own row, from both nodes at once.
        while not stop.is_set():
            made = _admin(node, "POST", "/gate/api/grants", json={"user": user, "patient_id": patient_id,
                                                                   "level": "view_only"})
            assert made.status_code == 201, made.text
            assert _admin(node, "DELETE", f"/gate/api/grants/{made.json()['id']}").status_code == 200
            answered[name] += 1

    work = [("a", pair.a, "drlocked", "GATE-P001"), ("a", pair.a, "drload", "GATE-P002"),
            ("b", pair.b, "drlocked", "GATE-P002"), ("b", pair.b, "drload", "GATE-P001")]
    with ThreadPoolExecutor(4) as pool:
        loads = [pool.submit(load, *job) for job in work]
        verified = []
        for _ in range(3):
            time.sleep(1.0)
            verified.append(pair.a.gatectl("audit-verify", check=False))
        stop.set()
        for done in loads:
            done.result()
    for result in verified:
        assert result.returncode == 0, result.stdout + result.stderr
    final = pair.b.gatectl("audit-verify")
    assert "ok" in final.stdout.lower(), final.stdout
    rows = pair.rows("SELECT id, action, path FROM audit_events WHERE id > ? ORDER BY id", (before,))
    assert [row["id"] for row in rows] == list(range(before + 1, before + 1 + len(rows)))  # no gap, no fork
    assert answered["a"] > 0 and answered["b"] > 0
    assert len([r for r in rows if r["action"] in ("grant.create", "grant.revoke")]) >= 2 * sum(answered.values())


def test_a_node_killed_under_load_loses_no_audit_row_of_an_answered_request(pair: Pair):
    doctor = ("drkilled", DOCTORS["drkilled"])
    instances = sorted(_admin(pair.a, "GET", "/instances").json())
    tags = {i: _admin(pair.a, "GET", f"/instances/{i}/simplified-tags").json() for i in instances}
    patient_id = tags[instances[0]]["PatientID"]
    # From before the first read through node B, which opens the coalescing windows.
    before = pair.rows("SELECT last_id FROM audit_head")[0]["last_id"]
    grant = _admin(pair.a, "POST", "/gate/api/grants",
                   json={"user": doctor[0], "patient_id": patient_id, "level": "download"})
    assert grant.status_code == 201
    readable = [i for i in instances if tags[i]["PatientID"] == patient_id]
    _until(lambda: requests.get(pair.b.url(f"/instances/{readable[0]}/file"), auth=doctor,
                                timeout=30).status_code == 200, "the grant reaching node B")
    served: list[tuple[float, float, str, str]] = []  # (sent, answered, instance, sub-route)

    def read(offset: int) -> None:
        session = requests.Session()
        session.auth = doctor
        for n in range(5000):  # bounded: the kill comes long before this ends
            instance = readable[(n + offset) % len(readable)]
            sub = ("file", "preview", "simplified-tags")[n % 3]
            sent = time.time()
            try:
                answer = session.get(pair.b.url(f"/instances/{instance}/{sub}"), timeout=10)
            except requests.RequestException:
                return  # the node is gone
            if answer.status_code == 200:
                served.append((sent, time.time(), instance, sub))

    with ThreadPoolExecutor(4) as pool:
        readers = [pool.submit(read, offset) for offset in range(4)]
        deadline = time.monotonic() + 30
        while len(served) < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
        pair.b.kill9()
        for done in readers:
            done.result()
    assert len(served) >= 300, len(served)
    # With the default coalescing, the reads of one study in a window share the row of the first
    # (durable before its answer): each answered read is covered by its own row or by that one.
    window = 60.0
    coverage: dict[tuple[str, str], list[float]] = {}
    for row in pair.rows("SELECT ts, study_uid, action FROM audit_events WHERE id > ? AND actor = ? "
                         "AND outcome = 'allow' AND route_class = 'instances'", (before, doctor[0])):
        stamp = datetime.strptime(row["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
        coverage.setdefault((row["study_uid"], row["action"]), []).append(stamp)
    for sent, answered, instance, sub in served:
        stamps = coverage.get((tags[instance]["StudyInstanceUID"], "download" if sub == "file" else "view"), [])
        assert any(answered + 1 >= s >= sent - window - 1 for s in stamps), (instance, sub, sent)
    print(f"node B answered {len(served)} reads before SIGKILL; every one is covered by an audit row")
    assert pair.a.gatectl("audit-verify").returncode == 0
    pair.b.start(timeout=60)
    assert requests.get(pair.b.url(f"/instances/{readable[0]}/file"), auth=doctor, timeout=30).status_code == 200
    assert pair.b.gatectl("audit-verify").returncode == 0


def test_the_audit_table_refuses_edits_on_postgresql_too(pair: Pair):
    for statement in ("UPDATE audit_events SET reason = 'x' WHERE id = 1", "DELETE FROM audit_events WHERE id = 1",
                      "TRUNCATE audit_events"):
        with pytest.raises(RuntimeError, match="append-only"):
            pair.postgres.sql(statement, "gate")


def test_an_upgrade_run_while_both_nodes_serve_changes_nothing(pair: Pair):
    """The newest migration is taken back, then applied again by two `gatectl db-upgrade` at once
    while both nodes answer and write audit rows: its DDL waits for their transactions and theirs
    for it, nothing fails, and the chain still verifies."""
    doctor = ("drpair", DOCTORS["drpair"])
    instance = sorted(_admin(pair.a, "GET", "/instances").json())[0]
    head = _head_revision()
    _alembic(pair, "downgrade", "-1")
    assert pair.rows("SELECT version_num FROM alembic_version") != [{"version_num": head}]
    stop = threading.Event()
    statuses: list[int] = []

    def browse(node: OrthancProcess, user: str) -> None:
        while not stop.is_set():
            statuses.append(requests.get(node.url("/gate/api/me"), auth=doctor, timeout=30).status_code)
            statuses.append(_admin(node, "GET", f"/instances/{instance}").status_code)
            made = _admin(node, "POST", "/gate/api/grants",
                          json={"user": user, "patient_id": "GATE-P001", "level": "view_only"})
            statuses.append(made.status_code)
            if made.status_code == 201:
                statuses.append(_admin(node, "DELETE", f"/gate/api/grants/{made.json()['id']}").status_code)

    with ThreadPoolExecutor(4) as pool:
        browsing = [pool.submit(browse, node, user) for node, user in ((pair.a, "drlocked"), (pair.b, "drload"))]
        time.sleep(0.5)
        # Two upgrades at once, as two operators (or two nodes restarting) might: they take turns.
        upgrades = [pool.submit(pair.a.gatectl, "db-upgrade", check=False),
                    pool.submit(pair.b.gatectl, "db-upgrade", check=False)]
        results = [u.result() for u in upgrades]
        time.sleep(1.0)
        stop.set()
        for done in browsing:
            done.result()
    for result in results:
        assert result.returncode == 0, result.stderr
    assert statuses and set(statuses) <= {200, 201}, sorted(set(statuses))
    assert pair.rows("SELECT version_num FROM alembic_version") == [{"version_num": head}]
    assert pair.a.gatectl("audit-verify").returncode == 0
    with pytest.raises(RuntimeError, match="append-only"):  # what the migration made is there again
        pair.postgres.sql("DELETE FROM audit_events WHERE id = 1", "gate")


def _alembic(pair: Pair, verb: str, target: str) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    config = Config()
    config.set_main_option("script_location", str(REPO / "schema"))
    engine = create_engine(pair.store_url)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            getattr(command, verb)(config, target)
    finally:
        engine.dispose()


def _head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(REPO / "schema"))
    return ScriptDirectory.from_config(config).get_current_head()


def test_input_postgresql_cannot_hold_is_refused_as_input_not_as_an_outage(pair: Pair):
    """PostgreSQL's text holds no NUL and its columns have widths SQLite ignores: a sign-in name
    with a NUL, or one of 5000 characters, is refused and audited as on SQLite, and the store stays
    healthy (before, the audit batch holding such a row failed and every node refused everything
    while it recovered)."""
    before = pair.rows("SELECT last_id FROM audit_head")[0]["last_id"]
    odd = requests.post(pair.a.url("/gate/login"), json={"username": "drpair\x00", "password": "x"}, timeout=30)
    assert odd.status_code == 401, odd.text
    long_name = "d" * 5000
    assert requests.post(pair.b.url("/gate/login"), json={"username": long_name, "password": "x"},
                         timeout=30).status_code == 401
    # An id PostgreSQL's INTEGER cannot hold names nothing: 404, as on SQLite (not 400 or 503).
    assert _admin(pair.a, "DELETE", "/gate/api/grants/99999999999999").status_code == 404
    assert _admin(pair.b, "GET", f"/gate/api/doctors/{2**31}").status_code == 404
    for node in (pair.a, pair.b):
        assert requests.get(node.url("/gate/health"), timeout=30).status_code == 200
    rows = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(rows) < 2:
        rows = pair.rows("SELECT actor FROM audit_events WHERE id > ? AND action = 'login' AND (actor = ? OR actor "
                         "LIKE 'ddd%')", (before, "drpair\ufffd"))
    assert sorted(row["actor"] for row in rows) == ["d" * 128, "drpair\ufffd"], rows  # kept, cut to the column
    assert pair.a.gatectl("audit-verify").returncode == 0


def test_a_second_node_on_a_state_folder_in_use_is_refused_at_start(pair: Pair, tmp_path):
    """The audit spool in StateDirectory is one node's own: a node given another's is not started."""
    intruder = OrthancProcess(tmp_path / "intruder", gate=dict(pair.a.config["Gate"]))
    intruder.config.update({key: pair.a.config[key] for key in ("StorageDirectory", "IndexDirectory", "PostgreSQL",
                                                                 "Plugins")})
    intruder.config["WebViewer"] = {"CachePath": str(tmp_path / "intruder-cache")}
    intruder.write_config()
    intruder.start(wait=False)
    try:
        assert intruder.wait_exit(60) != 0
    finally:
        intruder.stop()
    assert "is used by another running Orthanc" in intruder.log_text()
    assert requests.get(pair.a.url("/gate/health"), timeout=30).status_code == 200


# -- the proxy of docker-compose.yml (deploy/nginx.conf) in front of the pair ---------------------



@pytest.fixture(scope="module")
def proxy(pair: Pair, tmp_path_factory: pytest.TempPathFactory):
    """Debian's nginx running deploy/nginx.conf as it is, but for the nodes' and its own addresses,
    the certificate (self-signed, made here) and, before nginx 1.25, `http2 on` (1.22's syntax is
    `listen ... http2`; the compose file's nginx 1.27 reads the line as written)."""
    folder = tmp_path_factory.mktemp("proxy")
    certificate, key = folder / "tls.crt", folder / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(certificate)],
                   check=True, capture_output=True)
    https, http = free_port(), free_port()
    site = (REPO / "deploy" / "nginx.conf").read_text()
    site = (site.replace("orthanc-a:8042", f"127.0.0.1:{pair.a.http_port}")
            .replace("orthanc-b:8042", f"127.0.0.1:{pair.b.http_port}")
            .replace("listen 443 ssl;", f"listen 127.0.0.1:{https} ssl;")
            .replace("listen 80;", f"listen 127.0.0.1:{http};")
            .replace("/run/secrets/tls_certificate", str(certificate)).replace("/run/secrets/tls_key", str(key))
            .replace("        proxy_pass http://orthanc_nodes;", f"        proxy_bind {PROXY_ADDRESS};\n"
                                                                  "        proxy_pass http://orthanc_nodes;"))
    if _nginx_version() < (1, 25, 1):
        site = site.replace("    http2 on;\n", "")
    assert site.count(f"proxy_bind {PROXY_ADDRESS}") == 2
    (folder / "site.conf").write_text(site)
    (folder / "nginx.conf").write_text(
        f"pid {folder}/nginx.pid;\nerror_log {folder}/error.log warn;\nevents {{}}\nhttp {{\n"
        f"  access_log off;\n  client_body_temp_path {folder}/body;\n  proxy_temp_path {folder}/proxy;\n"
        f"  fastcgi_temp_path {folder}/fastcgi;\n  uwsgi_temp_path {folder}/uwsgi;\n  scgi_temp_path {folder}/scgi;\n"
        f"  include {folder}/site.conf;\n}}\n")
    server = subprocess.Popen(["/usr/sbin/nginx", "-p", str(folder), "-c", str(folder / "nginx.conf"),
                               "-g", "daemon off;"], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and server.poll() is None:
            try:
                requests.get(f"https://127.0.0.1:{https}/gate/health", verify=str(certificate), timeout=2)
                break
            except requests.RequestException:
                time.sleep(0.1)
        assert server.poll() is None, server.stderr.read().decode()
        yield f"https://127.0.0.1:{https}", f"http://127.0.0.1:{http}", str(certificate)
    finally:
        server.terminate()
        server.wait(timeout=20)


def _nginx_version() -> tuple[int, ...]:
    said = subprocess.run(["/usr/sbin/nginx", "-v"], capture_output=True, text=True).stderr
    return tuple(int(part) for part in said.split("/")[1].split()[0].split("."))


def _from_client(url: str, certificate: str, body: dict, headers: dict) -> int:
    """POST as a browser at CLIENT_ADDRESS would, over the proxy's TLS."""
    parts = urlsplit(url)
    connection = http.client.HTTPSConnection(parts.hostname, parts.port, source_address=(CLIENT_ADDRESS, 0),
                                             context=ssl.create_default_context(cafile=certificate), timeout=30)
    try:
        connection.request("POST", parts.path, body=json.dumps(body),
                           headers={"Content-Type": "application/json", **headers})
        return connection.getresponse().status
    finally:
        connection.close()


def test_the_proxy_serves_both_nodes_over_tls_with_the_security_headers(pair: Pair, proxy):
    https, plain, certificate = proxy
    redirect = requests.get(plain + "/gate/login", allow_redirects=False, timeout=30)
    assert redirect.status_code == 301 and redirect.headers["Location"].startswith("https://")
    doctor = ("drpair", DOCTORS["drpair"])
    instance = sorted(_admin(pair.a, "GET", "/instances").json())[0]
    grant = _admin(pair.a, "POST", "/gate/api/grants", json={"user": doctor[0], "patient_id": "GATE-P001",
                                                            "level": "download"})
    assert grant.status_code == 201
    try:
        patient = _admin(pair.a, "GET", f"/instances/{instance}/simplified-tags").json()["PatientID"]
        answer = requests.get(f"{https}/instances/{instance}/file", auth=doctor, verify=certificate, timeout=30)
        assert answer.status_code == (200 if patient == "GATE-P001" else 403)
        for header, value in (("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
                              ("Strict-Transport-Security", "max-age=31536000")):
            assert value in answer.headers.get(header, ""), (header, answer.headers)
        # Both nodes answer behind it (round robin), each under its own Name.
        names = {requests.get(f"{https}/system", auth=(ADMIN, ADMIN_PASSWORD), verify=certificate,
                              timeout=30).json()["Name"] for _ in range(6)}
        assert names == {"node-a", "node-b"}
    finally:
        _admin(pair.a, "DELETE", f"/gate/api/grants/{grant.json()['id']}")


def test_behind_the_proxy_the_audit_records_the_clients_address_and_never_a_forged_one(pair: Pair, proxy):
    https, _, certificate = proxy
    before = pair.rows("SELECT last_id FROM audit_head")[0]["last_id"]
    # Through the proxy, with a forged X-Forwarded-For: the proxy replaces it with the client's.
    assert _from_client(f"{https}/gate/login", certificate, {"username": "proxy-probe", "password": "wrong"},
                        {"X-Forwarded-For": "203.0.113.66"}) == 401
    # Straight to a node, the same forgery from an address that is not the proxy: not believed.
    direct = requests.post(pair.b.url("/gate/login"), json={"username": "direct-probe", "password": "wrong"},
                           headers={"X-Forwarded-For": "203.0.113.66"}, timeout=30)
    assert direct.status_code == 401
    rows = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(rows) < 2:
        rows = pair.rows("SELECT actor, source_ip FROM audit_events WHERE id > ? AND action = 'login' "
                         "AND actor IN ('proxy-probe', 'direct-probe')", (before,))
    assert {row["actor"]: row["source_ip"] for row in rows} == {"proxy-probe": CLIENT_ADDRESS,
                                                                 "direct-probe": "127.0.0.1"}
