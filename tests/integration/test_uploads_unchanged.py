"""An admin's uploads through the Gate (POST /instances: a DICOM body, multipart forms, gzip, a ZIP)
are stored exactly as plain Orthanc stores them: the same answer, instance, file, metadata,
statistics and change log.

The Gate does not own POST /instances (only Orthanc's core records an upload's Origin, RemoteIP and
HttpUsername and decodes gzip and multipart bodies), but its request filter runs on every upload
and its received-instance callback sees every object about to be stored. This module is the guard
that for an admin neither changes anything: two servers, one plain Orthanc (no Python plugin) and
one with the Gate, are sent the same bytes, the Gate with the admin's credentials and plain Orthanc
with none (its authentication is off), and what each stored is compared.
"""

from __future__ import annotations

import base64
import gzip
import io
import re
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import requests
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from tests.conftest import ADMIN, ADMIN_PASSWORD, Server, start_gate
from tests.harness import OrthancProcess

# Both servers report a resource stable after 1 s instead of 60, so the change log compared at the
# end holds each series', study's and patient's Stable* change, not only the New* ones.
STABLE_AGE = {"StableAge": 1}
TIMESTAMP = re.compile(r"\d{8}T\d{6}")  # ReceptionDate, LastUpdate, a change's Date
FILE_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
PARENTS = {"series": "series", "study": "studies", "patient": "patients"}
BASIC = "Basic " + base64.b64encode(f"{ADMIN}:{ADMIN_PASSWORD}".encode()).decode()


# -- sending the same request to both servers --------------------------------------------------------

@dataclass(frozen=True)
class Side:
    base: str
    authorization: str | None  # None: plain Orthanc, whose authentication is off

    def send(self, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> requests.Response:
        sent = dict(headers or {})
        if self.authorization is not None:
            sent["Authorization"] = self.authorization
        return requests.request(method, self.base + path, data=body, headers=sent, timeout=60)


@dataclass
class Pair:
    plain_proc: OrthancProcess
    gate_server: Server
    stored: set[str] = field(default_factory=set)  # Orthanc ids of every instance the cases stored
    studies: set[str] = field(default_factory=set)

    def plain(self) -> Side:
        return Side(self.plain_proc.base, None)

    def gate(self, authorization: str) -> Side:
        return Side(self.gate_server.proc.base, authorization)

    def admin_both(self, method: str, path: str,
                   body: bytes | None = None) -> tuple[requests.Response, requests.Response]:
        """A read the comparison needs, of both servers (the Gate's as the admin, by password)."""
        return self.plain().send(method, path, body), self.gate(BASIC).send(method, path, body)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory):
    """Plain Orthanc and Orthanc with the Gate, both empty, each in its own folder."""
    plain = OrthancProcess(tmp_path_factory.mktemp("uploads-plain"), script=None, extra=STABLE_AGE)
    gate: Server | None = None
    try:
        plain.start()
        gate = start_gate(tmp_path_factory.mktemp("uploads-gate"), extra=STABLE_AGE)
        yield Pair(plain, gate)
    finally:
        if gate is not None:
            gate.proc.stop()
        plain.stop()


@pytest.fixture(params=["password", "api-key"])
def credentials(request: pytest.FixtureRequest, pair: Pair) -> tuple[str, str]:
    """The admin's Authorization header for the Gate, and the HttpUsername Orthanc records with it.

    Orthanc's web server takes HttpUsername from a Basic Authorization header whether or not its own
    authentication is on (HttpServer.cpp, GetAuthenticatedUsername), and from nothing else: so the
    admin's password upload is recorded as the admin's, an API key's (Bearer) as nobody's, and plain
    Orthanc, sent no credentials, records "" (test_the_same_credentials_are_recorded_alike sends
    plain Orthanc the same Basic header and sees it record the same name)."""
    if request.param == "password":
        return BASIC, ADMIN
    return f"Bearer {pair.gate_server.admin_key}", ""


# -- the uploads ---------------------------------------------------------------------------------------

def new_instance(study_uid: str, series_uid: str, number: int) -> bytes:
    """A small CT image of a new patient's study (fresh UIDs), as a DICOM file."""
    sop_uid = generate_uid()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop_uid
    ds.PatientID, ds.PatientName = f"UPL-{study_uid[-12:]}", "Upload^Zoë"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.StudyDate, ds.Modality, ds.StudyDescription = "20250301", "CT", "Uploads, unchanged"
    ds.SeriesNumber, ds.InstanceNumber = "1", str(number)  # InstanceNumber: IndexInSeries
    ds.Rows = ds.Columns = 4
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = bytes(range(16))
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def new_series(count: int) -> list[bytes]:
    """`count` instances of one series of a new patient's new study: one resource of each level per
    case, all stored by one request, so each becomes stable once on each server."""
    study_uid, series_uid = generate_uid(), generate_uid()
    return [new_instance(study_uid, series_uid, n) for n in range(1, count + 1)]


@dataclass(frozen=True)
class Request:
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Upload:
    files: list[bytes]  # the DICOM files, as stored
    sent: list[Request]  # in turn, to each server
    answers: Callable[[list[requests.Response]], None]  # checks plain Orthanc's answers are the case's


def _form(parts: list[tuple[str, bytes]], boundary: str, part_headers: str, closed: bool = True) -> bytes:
    body = b"".join(f"--{boundary}\r\n{part_headers.format(name=name)}\r\n\r\n".encode() + content + b"\r\n"
                    for name, content in parts)
    return body + f"--{boundary}{'--' if closed else ''}\r\n".encode()


def _stored_one(answers: list[requests.Response], status: str = "Success") -> None:
    assert answers[-1].status_code == 200 and answers[-1].json()["Status"] == status, answers[-1].text


def _forms_say_nothing(answers: list[requests.Response]) -> None:
    # Orthanc 1.10 answers a multipart/form-data POST with a bare 200, whatever each part did.
    assert [(a.status_code, a.content) for a in answers] == [(200, b"")] * len(answers)


def _a_dicom_body() -> Upload:
    files = new_series(1)
    return Upload(files, [Request(files[0], {"Content-Type": "application/dicom"})], _stored_one)


def _curl_form_of_two() -> Upload:
    """What `curl -F file1=@a.dcm -F file2=@b.dcm` sends (no X-Requested-With)."""
    files, boundary = new_series(2), "------------------------3c1d8e2a9f4b7e60"
    body = _form([(f"file{n}", f) for n, f in enumerate(files, 1)], boundary,
                 'Content-Disposition: form-data; name="{name}"; filename="{name}.dcm"\r\n'
                 "Content-Type: application/octet-stream")
    return Upload(files, [Request(body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})],
                  _forms_say_nothing)


def _explorer_form_of_two() -> Upload:
    """Orthanc Explorer's uploader (jQuery File Upload): a browser's form, name "files[]",
    X-Requested-With; with the loose spacing Orthanc's own test_upload_multipart_1 sends."""
    files, boundary = new_series(2), "----WebKitFormBoundarypJDNQqJPoXiorRmQ"
    body = _form([(f"image{n}", f) for n, f in enumerate(files, 1)], boundary,
                 'Content-Disposition  :   form-data  ; name ="files[]"   ; filename = "{name}.dcm"  \r\n'
                 "Content-Type: application/dicom")
    return Upload(files, [Request(body, {"Content-Type": f"multipart/form-data   ;    boundary  =  {boundary}  ",
                                         "X-Requested-With": "XMLHttpRequest"})], _forms_say_nothing)


def _explorer_chunks() -> Upload:
    """jQuery File Upload's maxChunkSize: one file in two requests (X-File-Name, X-File-Size), the
    shape of Orthanc's test_upload_multipart_2; stored when the last chunk arrives."""
    files, boundary = new_series(1), "----WebKitFormBoundaryQ8mVtY3kZp0aJ2sL"
    name, half = f"{generate_uid()}.dcm", len(files[0]) // 2
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "X-Requested-With": "XMLHttpRequest",
               "X-File-Name": name, "X-File-Size": str(len(files[0]))}
    part = f'Content-Disposition: form-data; name="files[]"; filename="{name}"'
    chunks = [_form([("", chunk)], boundary, part, closed=False) for chunk in (files[0][:half], files[0][half:])]
    return Upload(files, [Request(chunk, headers) for chunk in chunks], _forms_say_nothing)


def _gzip_body() -> Upload:
    files = new_series(1)
    return Upload(files, [Request(gzip.compress(files[0]), {"Content-Type": "application/dicom",
                                                            "Content-Encoding": "gzip"})], _stored_one)


def _zip_of_two() -> Upload:
    """Orthanc (1.8.2 on) stores each DICOM file of a ZIP posted to /instances, answering a list."""
    files = new_series(2)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("upload/readme.txt", "not DICOM: skipped")
        for n, dicom in enumerate(files, 1):
            bundle.writestr(f"upload/IM{n}.dcm", dicom)

    def answers(answered: list[requests.Response]) -> None:
        assert answered[0].status_code == 200
        assert [item["Status"] for item in answered[0].json()] == ["Success", "Success"]

    return Upload(files, [Request(archive.getvalue(), {"Content-Type": "application/zip"})], answers)


def _twice() -> Upload:
    files = new_series(1)
    request = Request(files[0], {"Content-Type": "application/dicom"})

    def answers(answered: list[requests.Response]) -> None:
        _stored_one(answered[:1])
        _stored_one(answered, "AlreadyStored")

    return Upload(files, [request, request], answers)


CASES: dict[str, Callable[[], Upload]] = {
    "a DICOM body": _a_dicom_body,
    "curl -F, two files": _curl_form_of_two,
    "Orthanc Explorer's form, two files": _explorer_form_of_two,
    "Orthanc Explorer's chunks of one file": _explorer_chunks,
    "gzip-encoded": _gzip_body,
    "a ZIP of two files": _zip_of_two,
    "the same file twice": _twice,
}


# -- comparing what each server stored -------------------------------------------------------------

def _same_answer(plain: requests.Response, gate: requests.Response, what: str) -> None:
    """Status, Content-Type and body: the Gate passes POST /instances to the core, nothing is
    re-serialised, so the bytes compare (the JSON parsed first, so a failure names the field)."""
    assert (gate.status_code, gate.headers.get("Content-Type")) == \
        (plain.status_code, plain.headers.get("Content-Type")), \
        f"{what}\n  plain: {plain.status_code} {plain.text[:300]}\n  gate:  {gate.status_code} {gate.text[:300]}"
    if plain.content[:1] in (b"[", b"{"):
        assert gate.json() == plain.json(), what
    assert gate.content == plain.content, what


def _instance_id(pair: Pair, dicom: bytes) -> str:
    """The instance each server filed this file as (exactly one, the same on both)."""
    sop_uid = str(dcmread(io.BytesIO(dicom), stop_before_pixels=True).SOPInstanceUID).encode()
    plain, gate = pair.admin_both("POST", "/tools/lookup", sop_uid)
    assert plain.status_code == gate.status_code == 200
    found = [[item["ID"] for item in answer.json() if item["Type"] == "Instance"] for answer in (plain, gate)]
    assert found[1] == found[0] and len(found[0]) == 1, ("plain, gate", found)
    return found[0][0]


def _same_metadata(pair: Pair, path: str, usernames: tuple[str, str] | None = None) -> dict[str, str]:
    """`{path}/metadata?expand` on both: timestamps compared by presence and format, HttpUsername
    (when given) against what each request's credentials make Orthanc record (plain's, the Gate's),
    everything else equal."""
    plain, gate = pair.admin_both("GET", f"{path}/metadata?expand")
    assert plain.status_code == gate.status_code == 200, path
    theirs, ours = plain.json(), gate.json()
    assert sorted(ours) == sorted(theirs), path
    for key in ("ReceptionDate", "LastUpdate"):
        if key in theirs:
            assert TIMESTAMP.fullmatch(theirs.pop(key)) and TIMESTAMP.fullmatch(ours.pop(key)), (path, key)
    if usernames is not None:
        assert (theirs.pop("HttpUsername"), ours.pop("HttpUsername")) == usernames, path
    assert ours == theirs, path
    return plain.json()


def _same_instance(pair: Pair, instance_id: str, dicom: bytes, usernames: tuple[str, str]) -> None:
    path = f"/instances/{instance_id}"
    plain, gate = pair.admin_both("GET", path)
    assert plain.status_code == gate.status_code == 200, path
    theirs, ours = plain.json(), gate.json()
    # The attachment's file name is a random UUID each server draws for itself.
    assert FILE_UUID.fullmatch(theirs.pop("FileUuid")) and FILE_UUID.fullmatch(ours.pop("FileUuid")), path
    assert ours == theirs, path
    metadata = _same_metadata(pair, path, usernames)
    assert metadata["Origin"] == "RestApi" and metadata["RemoteIP"] == "127.0.0.1", metadata
    assert metadata["TransferSyntax"] == ExplicitVRLittleEndian and metadata["SopClassUid"] == CTImageStorage
    assert "IndexInSeries" in metadata, metadata
    for level, plural in PARENTS.items():
        parent = pair.plain().send("GET", f"{path}/{level}").json()["ID"]
        assert "LastUpdate" in _same_metadata(pair, f"/{plural}/{parent}"), (level, parent)
    plain, gate = pair.admin_both("GET", f"{path}/file")
    assert plain.status_code == gate.status_code == 200, path
    assert plain.content == dicom and gate.content == dicom, f"{path}/file: not the bytes sent (uncompressed)"


def _answered_ids(answer: requests.Response) -> set[str]:
    if not answer.content:
        return set()
    items = answer.json()
    return {item["ID"] for item in (items if isinstance(items, list) else [items])}


def _send_both(plain: Side, gate: Side, upload: Upload, case: str) -> list[requests.Response]:
    """Each of the upload's requests to plain Orthanc, then the same to the Gate: the same answer."""
    answers = []
    for n, request in enumerate(upload.sent, 1):
        theirs = plain.send("POST", "/instances", request.body, request.headers)
        ours = gate.send("POST", "/instances", request.body, request.headers)
        _same_answer(theirs, ours, f"{case}: request {n} of {len(upload.sent)}")
        answers.append(theirs)
    upload.answers(answers)
    return answers


def _stored_alike(pair: Pair, upload: Upload, answers: list[requests.Response], usernames: tuple[str, str]) -> None:
    ids = [_instance_id(pair, dicom) for dicom in upload.files]
    pair.stored.update(ids)
    pair.studies.add(pair.plain().send("GET", f"/instances/{ids[0]}/study").json()["ID"])
    assert set().union(*map(_answered_ids, answers)) <= set(ids)
    for instance_id, dicom in zip(ids, upload.files, strict=True):
        _same_instance(pair, instance_id, dicom, usernames)


# -- the tests ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", list(CASES))
def test_an_admins_upload_is_stored_as_plain_orthanc_stores_it(pair: Pair, credentials: tuple[str, str], case: str):
    authorization, username = credentials
    upload = CASES[case]()
    answers = _send_both(pair.plain(), pair.gate(authorization), upload, case)
    _stored_alike(pair, upload, answers, ("", username))


def test_the_same_credentials_are_recorded_alike(pair: Pair):
    """Sent the admin's Basic header too, plain Orthanc (its authentication off, it checks nothing)
    records the same HttpUsername as the Gate: the one field the cases above expect to differ
    differs by the request, not by the Gate."""
    upload = _a_dicom_body()
    answers = _send_both(Side(pair.plain_proc.base, BASIC), pair.gate(BASIC), upload, "the same credentials")
    _stored_alike(pair, upload, answers, (ADMIN, ADMIN))


def _change_log(side: Side) -> list[dict]:
    """GET /changes?limit=100, and the pages after it (Since) until Done."""
    changes, since = [], 0
    while True:
        page = side.send("GET", f"/changes?limit=100&since={since}")
        assert page.status_code == 200, page.text
        changes += page.json()["Changes"]
        if page.json()["Done"]:
            return changes
        since = page.json()["Last"]


def _stable_studies(side: Side) -> set[str]:
    return {c["ID"] for c in _change_log(side) if c["ChangeType"] == "StableStudy"}


# Changes each server makes on its own time: stability, and (Orthanc 1.12's DICOMweb plugin) the
# attachment caching a stable series' metadata.
BACKGROUND_CHANGES = ("Stable", "UpdatedAttachment")


def _background(side: Side) -> list[tuple]:
    return sorted((c["ChangeType"], c["ID"]) for c in _change_log(side)
                  if c["ChangeType"].startswith(BACKGROUND_CHANGES))


def _settle(pair: Pair) -> None:
    """Wait until every study is stable on both servers and both have made the same background changes."""
    deadline = time.monotonic() + 30
    while not (pair.studies <= _stable_studies(pair.plain()) and pair.studies <= _stable_studies(pair.gate(BASIC))
               and _background(pair.plain()) == _background(pair.gate(BASIC))):
        assert time.monotonic() < deadline, "the studies did not become stable"
        time.sleep(0.5)


SIZES = re.compile(rb'("Total\w*Size(?:MB)?" : "?|<Total\w*Size(?:MB)?>)[0-9]+')


def test_the_statistics_are_the_same(pair: Pair):
    _settle(pair)
    plain, gate = pair.admin_both("GET", "/statistics")
    plain_xml = pair.plain().send("GET", "/statistics", headers={"Accept": "application/xml"})
    gate_xml = pair.gate(BASIC).send("GET", "/statistics", headers={"Accept": "application/xml"})
    assert plain.status_code == gate.status_code == plain_xml.status_code == gate_xml.status_code == 200
    assert plain.json()["CountInstances"] == len(pair.stored)
    assert plain.json()["CountStudies"] == len(pair.studies)
    # The Gate answers /statistics itself (others' are trimmed); an admin's is Orthanc's own bytes,
    # in Orthanc's XML too for a client that asks for it. Where the DICOMweb plugin caches each
    # stable series' metadata as an attachment (1.12), its size is each server's own (the cache
    # holds the server's address): the sizes are left out then, and only then.
    cached = any(change[0] == "UpdatedAttachment" for change in _background(pair.plain()))
    for plain_answer, gate_answer in ((plain, gate), (plain_xml, gate_xml)):
        assert gate_answer.headers["Content-Type"] == plain_answer.headers["Content-Type"]
        if cached:
            assert SIZES.sub(rb"\1N", gate_answer.content) == SIZES.sub(rb"\1N", plain_answer.content)
        else:
            assert gate_answer.content == plain_answer.content


@pytest.mark.parametrize("method, path, body", [
    ("GET", "/patients?expand", None), ("GET", "/studies", None),
    ("POST", "/tools/find", b'{"Level": "Series", "Query": {}, "Expand": true}')])
def test_lists_and_searches_answer_orthancs_xml_to_whoever_asks(pair: Pair, method, path, body):
    plain = pair.plain().send(method, path, body, headers={"Accept": "application/xml"})
    gate = pair.gate(BASIC).send(method, path, body, headers={"Accept": "application/xml"})
    assert plain.headers["Content-Type"] == "application/xml; charset=utf-8"
    # LastUpdate is each server's own: the same upload can land in two different seconds.
    assert (gate.status_code, gate.headers["Content-Type"], TIMESTAMP.sub("T", gate.text)) == \
        (plain.status_code, plain.headers["Content-Type"], TIMESTAMP.sub("T", plain.text))


def test_the_change_log_is_the_same(pair: Pair):
    """The New* changes in the same order, with the same resources; and, once every study is stable
    on both, the same Stable* changes. Seq and Date are each server's own."""
    _settle(pair)
    logs = []
    for side in (pair.plain(), pair.gate(BASIC)):
        changes = _change_log(side)
        assert all(TIMESTAMP.fullmatch(c["Date"]) for c in changes)
        assert [c["Seq"] for c in changes] == sorted({c["Seq"] for c in changes})
        logs.append([(c["ChangeType"], c["ResourceType"], c["ID"], c["Path"]) for c in changes])
    plain, gate = logs
    assert [c for c in gate if not c[0].startswith(BACKGROUND_CHANGES)] == \
        [c for c in plain if not c[0].startswith(BACKGROUND_CHANGES)]
    # Where a background change falls among later uploads' New* changes depends on when each
    # server's stability check ran: compared as a multiset. Each resource was filled by one
    # request, so it becomes stable exactly once on each server.
    assert sorted(c for c in gate if c[0].startswith(BACKGROUND_CHANGES)) == \
        sorted(c for c in plain if c[0].startswith(BACKGROUND_CHANGES))
    assert {c[2] for c in plain if c[0] == "NewInstance"} == pair.stored
    assert {c[2] for c in plain if c[0] == "StableStudy"} == pair.studies


# -- a patient: the Gate answers GET and DELETE /patients/{id} (trimmed for doctors) ---------------------

@pytest.mark.parametrize("query", ["", "?full", "?short", "?requestedTags=PatientBirthDate"])
@pytest.mark.parametrize("accept", [None, "application/xml"])
def test_a_patient_reads_as_plain_orthanc_answers_it(pair: Pair, query: str, accept: str | None):
    _settle(pair)
    headers = {"Accept": accept} if accept else {}
    for patient in pair.plain().send("GET", "/patients").json():
        plain = pair.plain().send("GET", f"/patients/{patient}{query}", headers=headers)
        gate = pair.gate(BASIC).send("GET", f"/patients/{patient}{query}", headers=headers)
        assert (gate.status_code, gate.headers["Content-Type"]) == (plain.status_code, plain.headers["Content-Type"])
        # When each server last changed the patient is its own.
        assert TIMESTAMP.sub("T", gate.text) == TIMESTAMP.sub("T", plain.text)
    unknown = "0" * 8 + "-" + "-".join(["0" * 8] * 4)
    assert pair.gate(BASIC).send("GET", f"/patients/{unknown}").status_code == \
        pair.plain().send("GET", f"/patients/{unknown}").status_code == 404


def test_deleting_a_patient_answers_as_plain_orthanc_answers_it(pair: Pair):
    """Last in this module: it removes what the comparisons above were made on."""
    study_uid, series_uid = generate_uid(), generate_uid()
    dicom = new_instance(study_uid, series_uid, 1)
    answers = [side.send("POST", "/instances", dicom) for side in (pair.plain(), pair.gate(BASIC))]
    assert [a.status_code for a in answers] == [200, 200]
    patient = answers[0].json()["ParentPatient"]
    plain = pair.plain().send("DELETE", f"/patients/{patient}")
    gate = pair.gate(BASIC).send("DELETE", f"/patients/{patient}")
    assert (gate.status_code, gate.headers["Content-Type"], gate.content) == \
        (plain.status_code, plain.headers["Content-Type"], plain.content)
    assert pair.gate(BASIC).send("GET", f"/patients/{patient}").status_code == 404
    again = [side.send("DELETE", f"/patients/{patient}") for side in (pair.plain(), pair.gate(BASIC))]
    assert again[0].status_code == again[1].status_code == 404
