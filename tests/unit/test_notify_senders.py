"""The senders against real servers in-process: an aiosmtpd SMTP server (plain, STARTTLS, implicit TLS,
with AUTH) and a local HTTP sink standing in for each SMS gateway; and the outbox worker end to end."""

from __future__ import annotations

import base64
import datetime
import email
import email.policy
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from plugin.audit.record import AuditRecord
from plugin.config import OutboxSettings, SmsSettings, SmtpSettings
from plugin.notify.cipher import contact_cipher
from plugin.notify.email import SendFailed, SmtpSender, message_id
from plugin.notify.messages import StudyNotice, study_ready_messages
from plugin.notify.outbox import OutboxWorker
from plugin.notify.sms import SmsSender, sms_request
from plugin.store import outbox
from plugin.store.db import Store
from plugin.store.models import OutboxMessage
from plugin.store.outbox import NewMessage
from tests.unit.conftest import FakeClock, sqlite_url

USER, PASSWORD = "gate", "s3cret-smtp-password"
RECIPIENT = "dr.naidoo@example.com"
NUMBER = "+27821234567"
TIMEOUT = 5.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """urllib would send the local sink's requests to a proxy named in the environment."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


# -- a certificate for 127.0.0.1 and localhost -----------------------------------------------------


@dataclass(frozen=True)
class Tls:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
            .sign(key, hashes.SHA256()))
    tls = Tls(folder / "cert.pem", folder / "key.pem")
    tls.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tls.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return tls


# -- a real SMTP server ----------------------------------------------------------------------------


@dataclass
class Mailbox:
    """What the SMTP server received: each message's envelope, bytes and how the session was made."""

    messages: list[dict] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)  # (mechanism, login)
    refuse_recipients: bool = False

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:  # noqa: ANN001, N802
        if self.refuse_recipients:
            return f"550 5.1.1 <{address}>: no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001, N802
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos), "data": envelope.content,
                              "tls": server.transport.get_extra_info("ssl_object") is not None,
                              "authenticated": session.authenticated})
        return "250 Message accepted"

    def authenticate(self, server, session, envelope, mechanism: str, auth_data) -> AuthResult:  # noqa: ANN001
        assert isinstance(auth_data, LoginPassword)
        self.logins.append((mechanism, auth_data.login.decode()))
        ok = (auth_data.login.decode(), auth_data.password.decode()) == (USER, PASSWORD)
        return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., tuple[Mailbox, int]]]:
    started: list[Controller] = []

    def start(**options) -> tuple[Mailbox, int]:  # noqa: ANN003
        mailbox = Mailbox()
        if options.pop("with_auth", False):
            options["authenticator"] = mailbox.authenticate
        port = free_port()
        controller = Controller(mailbox, hostname="127.0.0.1", port=port, **options)
        controller.start()
        started.append(controller)
        return mailbox, port

    yield start
    for controller in started:
        controller.stop()


def smtp_settings(port: int, security: str, tls: Tls | None = None, **changes) -> SmtpSettings:  # noqa: ANN003
    settings = SmtpSettings(host="127.0.0.1", port=port, security=security,
                            sender="Sandton Radiology <pacs@example.co.za>", ca_file=str(tls.cert) if tls else None)
    return replace(settings, **changes)


def send_one(settings: SmtpSettings, key: str = "study-ready:1.2.3:7:email") -> str:
    sender = SmtpSender(settings, TIMEOUT)
    header = sender.message_id(key)
    sender.send(RECIPIENT, "Sandton Radiology: a new study is ready for you", "plain text body",
                "<p>html body</p>", header)
    return header


def assert_received(mailbox: Mailbox, header: str) -> email.message.EmailMessage:
    [received] = mailbox.messages
    assert received["from"] == "pacs@example.co.za" and received["to"] == [RECIPIENT]
    parsed = email.message_from_bytes(received["data"], policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in parsed.iter_parts()] == ["text/plain", "text/html"]
    assert parsed.get_body(("plain",)).get_content().strip() == "plain text body"
    assert parsed.get_body(("html",)).get_content().strip() == "<p>html body</p>"
    assert parsed["Message-ID"] == header
    assert parsed["To"] == RECIPIENT and parsed["Subject"] == "Sandton Radiology: a new study is ready for you"
    assert parsed["Date"]
    return parsed


def test_plain_smtp(smtp_server) -> None:
    mailbox, port = smtp_server()
    header = send_one(smtp_settings(port, "none"))
    assert_received(mailbox, header)
    assert mailbox.messages[0]["tls"] is False


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_starttls_with_auth(smtp_server, tls: Tls, mechanism: str) -> None:
    other = "LOGIN" if mechanism == "PLAIN" else "PLAIN"
    mailbox, port = smtp_server(tls_context=tls.server_context(), require_starttls=True, with_auth=True,
                                auth_require_tls=True, auth_exclude_mechanism=[other])
    header = send_one(smtp_settings(port, "starttls", tls, username=USER, password=PASSWORD))
    assert_received(mailbox, header)
    assert mailbox.messages[0]["tls"] is True and mailbox.messages[0]["authenticated"] is True
    assert mailbox.logins == [(mechanism, USER)]


def test_implicit_tls_with_auth(smtp_server, tls: Tls) -> None:
    # aiosmtpd counts only STARTTLS as TLS for auth_require_tls; here the whole connection is TLS.
    mailbox, port = smtp_server(ssl_context=tls.server_context(), with_auth=True, auth_require_tls=False)
    header = send_one(smtp_settings(port, "tls", tls, username=USER, password=PASSWORD))
    assert_received(mailbox, header)
    assert mailbox.messages[0]["tls"] is True and mailbox.messages[0]["authenticated"] is True


def test_starttls_mode_refuses_a_server_without_starttls(smtp_server, tls: Tls) -> None:
    mailbox, port = smtp_server()
    with pytest.raises(SendFailed, match="STARTTLS"):
        send_one(smtp_settings(port, "starttls", tls))
    assert mailbox.messages == []


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_a_certificate_not_trusted_is_refused(smtp_server, tls: Tls, security: str) -> None:
    options = {"tls_context": tls.server_context()} if security == "starttls" else {"ssl_context": tls.server_context()}
    mailbox, port = smtp_server(**options)
    with pytest.raises(SendFailed, match="SSLCertVerificationError"):
        send_one(smtp_settings(port, security))  # no CaFile: the system's CAs do not know this one
    assert mailbox.messages == []


def test_a_wrong_password_fails_without_naming_it(smtp_server, tls: Tls) -> None:
    mailbox, port = smtp_server(tls_context=tls.server_context(), with_auth=True, auth_require_tls=True)
    with pytest.raises(SendFailed) as failed:
        send_one(smtp_settings(port, "starttls", tls, username=USER, password="wrong"))
    assert "535" in failed.value.message and "wrong" not in failed.value.message
    assert mailbox.messages == []


def test_auth_is_not_offered_without_tls(smtp_server) -> None:
    mailbox, port = smtp_server(with_auth=True, auth_require_tls=True)
    with pytest.raises(SendFailed):
        send_one(smtp_settings(port, "none", username=USER, password=PASSWORD))
    assert mailbox.messages == [] and mailbox.logins == []


def test_a_refused_recipient_fails_without_naming_them(smtp_server) -> None:
    mailbox, port = smtp_server()
    mailbox.refuse_recipients = True
    with pytest.raises(SendFailed) as failed:
        send_one(smtp_settings(port, "none"))
    assert "naidoo" not in failed.value.message and "example" not in failed.value.message


def test_no_server_listening() -> None:
    with pytest.raises(SendFailed, match="ConnectionRefusedError"):
        send_one(smtp_settings(free_port(), "none"))


def test_the_message_id_is_the_same_for_the_same_idempotency_key() -> None:
    first = message_id("study-ready:1.2.3:7:email", "Practice <pacs@example.co.za>")
    assert first == message_id("study-ready:1.2.3:7:email", "Practice <pacs@example.co.za>")
    assert first != message_id("study-ready:1.2.3:8:email", "Practice <pacs@example.co.za>")
    assert first.startswith("<") and first.endswith("@example.co.za>") and "1.2.3" not in first


# -- a real HTTP sink for SMS gateways -------------------------------------------------------------


@dataclass
class Sink:
    """A local HTTP server recording what it is sent; answers `status` (and `location` for a redirect)."""

    port: int
    status: int = 202
    location: str = ""
    requests: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def start(self) -> Sink:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with sink.lock:
                    sink.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                          "body": body})
                self.send_response(sink.status)
                if sink.location:
                    self.send_header("Location", sink.location)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_POST = do_PUT = do_GET = _record  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def bodies(self) -> list[dict]:
        with self.lock:
            return [json.loads(request["body"]) for request in self.requests]


@pytest.fixture
def sink() -> Iterator[Sink]:
    running = Sink(free_port()).start()
    yield running
    running.stop()


def gateway(sink: Sink, gateway: str, **changes) -> SmsSettings:  # noqa: ANN003
    return replace(SmsSettings(gateway=gateway, url=f"http://127.0.0.1:{sink.port}/v1/messages"), **changes)


TEXT = 'Sandton Radiology: a new study is ready for you. Open https://pacs.example.co.za/gate/doctor'


def test_clickatell_request(sink: Sink) -> None:
    SmsSender(gateway(sink, "clickatell", api_key="CLICK-KEY-1"), TIMEOUT).send(NUMBER, TEXT)
    [request] = sink.requests
    assert (request["method"], request["path"]) == ("POST", "/v1/messages")
    assert request["headers"]["Authorization"] == "CLICK-KEY-1"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["Accept"] == "application/json"
    assert json.loads(request["body"]) == {"content": TEXT, "to": ["27821234567"]}


def test_bulksms_request(sink: Sink) -> None:
    SmsSender(gateway(sink, "bulksms", username="token-id", password="token-secret", sender="Sandton"),
              TIMEOUT).send(NUMBER, TEXT)
    [request] = sink.requests
    assert request["method"] == "POST"
    assert request["headers"]["Authorization"] == "Basic " + base64.b64encode(b"token-id:token-secret").decode()
    assert request["headers"]["Content-Type"] == "application/json"
    assert json.loads(request["body"]) == {"to": NUMBER, "body": TEXT, "from": "Sandton"}


def test_bulksms_without_a_sender_sends_no_from(sink: Sink) -> None:
    SmsSender(gateway(sink, "bulksms", username="u", password="p"), TIMEOUT).send(NUMBER, TEXT)
    assert sink.bodies() == [{"to": NUMBER, "body": TEXT}]


def test_generic_request_keeps_a_json_template_valid(sink: Sink) -> None:
    settings = gateway(sink, "generic", method="PUT", api_key="GEN-KEY", sender='Dr "X"',
                       headers=(("X-Api-Key", "{api_key}"), ("Content-Type", "application/json; charset=utf-8")),
                       body='{"msisdn":"{to}","message":"{text}","sender":"{from}"}')
    hostile = 'quote " backslash \\ newline\n brace {text} {to} unicode \u00e9'
    SmsSender(settings, TIMEOUT).send(NUMBER, hostile)
    [request] = sink.requests
    assert (request["method"], request["path"]) == ("PUT", "/v1/messages")
    assert request["headers"]["X-Api-Key"] == "GEN-KEY"
    assert request["headers"]["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(request["body"]) == {"msisdn": NUMBER, "message": hostile, "sender": 'Dr "X"'}


def test_generic_request_defaults_to_json_content() -> None:
    settings = SmsSettings(gateway="generic", url="http://sms.invalid/send", body='{"to":"{to}","t":"{text}"}')
    request = sms_request(settings, NUMBER, "hi")
    assert request.headers == {"Content-Type": "application/json"}
    assert (request.method, json.loads(request.body)) == ("POST", {"to": NUMBER, "t": "hi"})


def test_a_500_answer_fails_without_the_number_or_text(sink: Sink) -> None:
    sink.status = 500
    with pytest.raises(SendFailed) as failed:
        SmsSender(gateway(sink, "clickatell", api_key="k"), TIMEOUT).send(NUMBER, TEXT)
    assert failed.value.message == "the SMS gateway answered HTTP 500"
    assert len(sink.requests) == 1


def test_a_redirect_is_not_followed(sink: Sink) -> None:
    sink.status, sink.location = 302, f"http://127.0.0.1:{sink.port}/elsewhere"
    with pytest.raises(SendFailed, match="302"):
        SmsSender(gateway(sink, "clickatell", api_key="k"), TIMEOUT).send(NUMBER, TEXT)
    assert [request["path"] for request in sink.requests] == ["/v1/messages"]  # the credentials went nowhere else


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_any_2xx_is_success(sink: Sink, status: int) -> None:
    sink.status = status
    SmsSender(gateway(sink, "clickatell", api_key="k"), TIMEOUT).send(NUMBER, TEXT)


def test_an_unreachable_gateway_fails() -> None:
    settings = SmsSettings(gateway="clickatell", url=f"http://127.0.0.1:{free_port()}/", api_key="k")
    with pytest.raises(SendFailed, match="unreachable"):
        SmsSender(settings, TIMEOUT).send(NUMBER, TEXT)


@pytest.mark.parametrize("number", ["0821234567", "27821234567", "+27 82 123 4567", "+0821234567", ""])
def test_a_number_not_in_e164_form_is_refused_before_sending(sink: Sink, number: str) -> None:
    with pytest.raises(SendFailed, match="E.164") as failed:
        SmsSender(gateway(sink, "clickatell", api_key="k"), TIMEOUT).send(number, TEXT)
    assert number.strip() == "" or number not in failed.value.message
    assert sink.requests == []


# -- the outbox worker -----------------------------------------------------------------------------

FAST = OutboxSettings(max_attempts=50, retry_base_seconds=1.0, retry_max_seconds=4.0, poll_seconds=60.0,
                      send_timeout_seconds=2.0)


@dataclass
class Log:
    warnings: list[str] = field(default_factory=list)
    audit: list[AuditRecord] = field(default_factory=list)


def worker(store: Store, cipher, clock: FakeClock, log: Log, settings: OutboxSettings = FAST,  # noqa: ANN001
           sms: SmsSender | None = None, mail: SmtpSender | None = None) -> OutboxWorker:
    return OutboxWorker(store, cipher, settings, mail, sms, clock, log.warnings.append, log.audit.append,
                        jitter=lambda: 0.0, batch=3)


def sms_message(n: int) -> NewMessage:
    return NewMessage(f"test:{n}:sms", "sms", "study_ready", f"+2782123{n:04d}", "", f"study {n} is ready", "",
                      f"1.2.{n}", 7)


def all_rows(store: Store) -> list[OutboxMessage]:
    with store.read() as db:
        return list(db.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars())


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_ten_messages_survive_a_gateway_outage_and_a_restart_and_arrive_once(db_path: Path, store: Store) -> None:
    cipher = contact_cipher(Fernet.generate_key())
    clock, log = FakeClock(), Log()
    down = Sink(free_port())  # nothing listens on its port yet
    settings = SmsSettings(gateway="bulksms", url=f"http://127.0.0.1:{down.port}/v1/messages", username="u",
                           password="p")
    with store.transaction() as db:
        for n in range(10):
            assert outbox.enqueue(db, sms_message(n), cipher, clock.now)
        outbox.enqueue(db, NewMessage("test:mail", "email", "welcome", RECIPIENT, "s", "t", "<p>h</p>"), cipher,
                       clock.now)

    # The first run: the gateway is down, every message fails once and waits.
    assert worker(store, cipher, clock, log, sms=SmsSender(settings, TIMEOUT)).send_due_now() == 0
    sms_rows = [row for row in all_rows(store) if row.channel == "sms"]
    assert {(row.status, row.attempts) for row in sms_rows} == {("pending", 1)}
    assert {row.last_error for row in sms_rows} == {"the SMS gateway is unreachable (ConnectionRefusedError)"}
    # ... and dies holding three it had claimed again.
    with store.transaction() as db:
        assert len(outbox.claim_due(db, clock.advance(1.0), 3)) == 3

    # The restart, as two nodes sharing the store; the gateway is still down at first.
    clock.advance(2 * FAST.send_timeout_seconds + 1)
    nodes = [Store(sqlite_url(db_path), timeout_seconds=10), Store(sqlite_url(db_path), timeout_seconds=10)]
    workers = [worker(node, cipher, clock, log, sms=SmsSender(settings, TIMEOUT)) for node in nodes]
    try:
        for each in workers:
            each.start()
        wait_for(lambda: all(row.attempts >= 2 and row.status == "pending"
                             for row in all_rows(store) if row.channel == "sms"))
        down.start()  # the gateway is back
        clock.advance(FAST.retry_max_seconds)
        for each in workers:
            each.wake()
        wait_for(lambda: all(row.status == "sent" for row in all_rows(store) if row.channel == "sms"))
    finally:
        for each in workers:
            each.stop(timeout=5)
        for node in nodes:
            node.dispose()
        down.stop()

    received = Counter(body["body"] for body in down.bodies())
    assert received == Counter({f"study {n} is ready": 1 for n in range(10)})
    assert {body["to"] for body in down.bodies()} == {f"+2782123{n:04d}" for n in range(10)}
    [mail] = [row for row in all_rows(store) if row.channel == "email"]
    assert (mail.status, mail.attempts, mail.last_error) == ("pending", 0, "no e-mail server configured")
    assert log.audit == [] and log.warnings == []


def test_the_worker_sends_email_through_smtp(smtp_server, store: Store) -> None:
    mailbox, port = smtp_server()
    cipher, clock, log = contact_cipher(Fernet.generate_key()), FakeClock(), Log()
    study = StudyNotice("1.2.840.5", "oid", "20240131", ("MR",), "MR knee", "ACC-1")
    messages = study_ready_messages(7, RECIPIENT, "", study, "https://pacs.example.co.za", "Sandton Radiology")
    with store.transaction() as db:
        for each in messages:
            outbox.enqueue(db, each, cipher, clock.now)
    mail = SmtpSender(smtp_settings(port, "none"), TIMEOUT)
    assert worker(store, cipher, clock, log, mail=mail).send_due_now() == 1
    [received] = mailbox.messages
    parsed = email.message_from_bytes(received["data"], policy=email.policy.default)
    assert parsed["Message-ID"] == mail.message_id("study-ready:1.2.840.5:7:email")
    assert "MR knee" in parsed.get_body(("html",)).get_content()
    assert [(row.status, row.sent_at) for row in all_rows(store)] == [("sent", clock.now)]


def test_a_message_given_up_is_audited_without_its_recipient(sink: Sink, store: Store) -> None:
    sink.status = 500
    cipher, clock, log = contact_cipher(Fernet.generate_key()), FakeClock(), Log()
    settings = replace(FAST, max_attempts=2)
    sender = SmsSender(gateway(sink, "clickatell", api_key="k"), TIMEOUT)
    with store.transaction() as db:
        outbox.enqueue(db, sms_message(1), cipher, clock.now)
    assert worker(store, cipher, clock, log, settings, sms=sender).send_due_now() == 0
    assert log.audit == []
    clock.advance(settings.retry_max_seconds)
    worker(store, cipher, clock, log, settings, sms=sender).send_due_now()
    [row] = all_rows(store)
    assert (row.status, row.attempts) == ("dead", 2)
    [record] = log.audit
    assert (record.action, record.outcome, record.actor, record.study_uid) == ("outbox.dead", "failure",
                                                                               "gate:outbox", "1.2.1")
    assert f"message {row.id}" in record.reason and "study_ready" in record.reason and "HTTP 500" in record.reason
    assert "+2782" not in record.reason and "is ready" not in record.reason
    [warning] = log.warnings
    assert f"message {row.id}" in warning and "+2782" not in warning
    clock.advance(10_000)
    worker(store, cipher, clock, log, settings, sms=sender).send_due_now()
    assert len(sink.requests) == 2  # a dead message is not tried again by itself


def test_a_message_that_cannot_be_decrypted_fails_without_killing_the_worker(sink: Sink, store: Store) -> None:
    clock, log = FakeClock(), Log()
    with store.transaction() as db:
        outbox.enqueue(db, sms_message(1), contact_cipher(Fernet.generate_key()), clock.now)  # another key
        outbox.enqueue(db, sms_message(2), cipher := contact_cipher(Fernet.generate_key()), clock.now)
    sender = SmsSender(gateway(sink, "clickatell", api_key="k"), TIMEOUT)
    assert worker(store, cipher, clock, log, sms=sender).send_due_now() == 1
    unreadable, sent = all_rows(store)
    assert (unreadable.status, sent.status) == ("pending", "sent")
    assert "decrypt" in unreadable.last_error


def test_stop_is_prompt_and_wake_sends_at_once(sink: Sink, store: Store) -> None:
    cipher, clock, log = contact_cipher(Fernet.generate_key()), FakeClock(), Log()
    running = worker(store, cipher, clock, log, sms=SmsSender(gateway(sink, "clickatell", api_key="k"), TIMEOUT))
    with store.transaction() as db:
        outbox.enqueue(db, sms_message(1), cipher, clock.now)
    running.start()
    try:
        wait_for(lambda: len(sink.requests) == 1, seconds=5)  # the first pass runs at start
        with store.transaction() as db:
            outbox.enqueue(db, sms_message(2), cipher, clock.now)
        running.wake()  # PollSeconds is a minute: only the wake can send it in time
        wait_for(lambda: len(sink.requests) == 2, seconds=5)
    finally:
        started = time.monotonic()
        running.stop(timeout=5)
        assert time.monotonic() - started < 1.0
    assert [row.status for row in all_rows(store)] == ["sent", "sent"]


def test_stopping_gives_back_the_claimed_messages_not_yet_tried(sink: Sink, store: Store) -> None:
    cipher, clock, log = contact_cipher(Fernet.generate_key()), FakeClock(), Log()
    with store.transaction() as db:
        for n in range(3):
            outbox.enqueue(db, sms_message(n), cipher, clock.now)

    class StopsAfterOne:
        def __init__(self) -> None:
            self.sent: list[str] = []

        def send(self, to: str, text: str) -> None:
            self.sent.append(text)
            stopping.stop(timeout=0)  # stop arrives while the first message is being sent

    sender = StopsAfterOne()
    stopping = worker(store, cipher, clock, log, sms=sender)  # type: ignore[arg-type]
    assert stopping.send_due_now() == 1
    assert sender.sent == ["study 0 is ready"]
    assert [(row.status, row.attempts) for row in all_rows(store)] == [("sent", 0), ("pending", 0), ("pending", 0)]
