"""A large Orthanc index, fast, for benches: `populate()` fills a running Orthanc with tiny studies.

Every study has one series holding one instance (Secondary Capture, 8x8 pixels, 8-bit MONOCHROME2,
explicit VR little endian, under 900 bytes). Study i (0-based) belongs to patient i % patients
("BENCH-P000123", "BENCH^P000123"), has AccessionNumber "ACC%06d" % i, a StudyDate spread over four
years and a Modality cycling CT/MR/CR/US. Its UIDs derive from i alone, so a re-run with the same
arguments stores nothing new (Orthanc answers "AlreadyStored"); a re-run with another `patients`
would file the same StudyInstanceUIDs under other patients, which Orthanc treats as other studies.

Speed: pydicom builds and encodes one template; each instance is then assembled from the
template's encoded elements with its own values spliced in (about 10 microseconds, where a
`dcmwrite` per instance costs about 1 ms of GIL-bound CPU, which Orthanc needs for itself on a
small machine).
`populate()` checks that the splicing gives, byte for byte, what `dcmwrite` gives.

Run as a script, it starts a plain Orthanc (no Python plugin) in a temporary folder, populates it,
checks /statistics and times /tools/find with lists of 1000 StudyInstanceUIDs and 50 PatientIDs,
then stops Orthanc, runs SQLite's ANALYZE on its index and times the same queries again:

    .venv/bin/python bench/index.py [N] [--patients P] [--mode zip|single] [--no-analyze] [--keep]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import io
import os
import shutil
import signal
import sqlite3
import statistics
import struct
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import requests
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

# Under the UID root of the project's test data (tests/dicom-samples/make_samples.py uses ROOT.1
# and ROOT.2); ".9" is the bench branch. The longest UID here stays far below 64 characters.
ROOT = "1.2.826.0.1.3680043.10.1192.9"
MODALITIES = ("CT", "MR", "CR", "US")
FIRST_DATE = datetime.date(2020, 1, 1)
DATES = [(FIRST_DATE + datetime.timedelta(days=d)).strftime("%Y%m%d") for d in range(4 * 365)]

# Tags whose value changes per instance (all short-VR elements: 2-byte length in explicit VR LE).
MEDIA_SOP = 0x00020003
SOP_UID, STUDY_DATE, ACCESSION, MODALITY = 0x00080018, 0x00080020, 0x00080050, 0x00080060
PATIENT_NAME, PATIENT_ID = 0x00100010, 0x00100020
STUDY_UID, SERIES_UID, STUDY_ID = 0x0020000D, 0x0020000E, 0x00200010
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
UID_VRS = {b"UI"}


def study_uid(i: int) -> str:
    return f"{ROOT}.1.{i}"


def series_uid(i: int) -> str:
    return f"{ROOT}.2.{i}"


def sop_uid(i: int) -> str:
    return f"{ROOT}.3.{i}"


def patient_id(p: int) -> str:
    return f"BENCH-P{p:06d}"


def orthanc_id(*parts: str) -> str:
    """Orthanc's identifier of a resource: SHA-1 of "PatientID|StudyUID|..." in 5 dashed groups."""
    digest = hashlib.sha1("|".join(parts).encode(), usedforsecurity=False).hexdigest()
    return "-".join(digest[k:k + 8] for k in range(0, 40, 8))


def values(i: int, patients: int) -> dict[int, str]:
    """The per-instance values of study i, by tag."""
    p = i % patients
    return {MEDIA_SOP: sop_uid(i), SOP_UID: sop_uid(i), STUDY_DATE: DATES[(i * 7919) % len(DATES)],
            ACCESSION: f"ACC{i:06d}", MODALITY: MODALITIES[i % len(MODALITIES)],
            PATIENT_NAME: f"BENCH^P{p:06d}", PATIENT_ID: patient_id(p), STUDY_UID: study_uid(i),
            SERIES_UID: series_uid(i), STUDY_ID: str(i % 10**16)}


def template() -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid(0)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = sop_uid(0)
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber = DATES[0], "101500", "ACC000000"
    ds.Modality, ds.ConversionType = "CT", "WSD"
    ds.ReferringPhysicianName, ds.StudyDescription, ds.SeriesDescription = "BENCH^REFERRER", "BENCH", "BENCH"
    ds.PatientName, ds.PatientID = "BENCH^P000000", patient_id(0)
    ds.PatientBirthDate, ds.PatientSex = "19700101", "O"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.StudyID = study_uid(0), series_uid(0), "0"
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows = ds.Columns = 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = bytes(range(0, 256, 4))
    return ds


def encode_with_pydicom(ds: Dataset) -> bytes:
    out = io.BytesIO()
    dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()


def split_elements(data: bytes, offset: int) -> Iterator[tuple[int, bytes, bytes]]:
    """(tag, VR, whole encoded element) of explicit VR little endian data without nested items."""
    while offset < len(data):
        group, element, vr = struct.unpack_from("<HH2s", data, offset)
        if vr in LONG_VRS:
            (length,) = struct.unpack_from("<I", data, offset + 8)
            end = offset + 12 + length
        else:
            (length,) = struct.unpack_from("<H", data, offset + 6)
            end = offset + 8 + length
        yield (group << 16) | element, vr, data[offset:end]
        offset = end


class Encoder:
    """Assembles instance i's bytes from the template's encoded elements, splicing in its values."""

    def __init__(self, patients: int) -> None:
        self.patients = patients
        encoded = encode_with_pydicom(template())
        assert encoded[128:132] == b"DICM"
        self.meta: list[tuple[int, bytes, bytes]] = []  # group 2, after (0002,0000)
        self.body: list[tuple[int, bytes, bytes]] = []
        for tag, vr, raw in split_elements(encoded, 132):
            if tag == 0x00020000:
                continue
            (self.meta if tag >> 16 == 2 else self.body).append((tag, vr, raw))
        self.preamble = encoded[:132]
        variable = set(values(0, 1))
        assert variable <= {tag for tag, _, _ in self.meta + self.body}, "template lacks a per-instance tag"

    @staticmethod
    def _element(tag: int, vr: bytes, value: str) -> bytes:
        raw = value.encode("ascii")
        if len(raw) % 2:
            raw += b"\0" if vr in UID_VRS else b" "
        return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr, len(raw)) + raw

    def encode(self, i: int) -> bytes:
        new = values(i, self.patients)
        meta = b"".join(self._element(tag, vr, new[tag]) if tag in new else raw for tag, vr, raw in self.meta)
        body = b"".join(self._element(tag, vr, new[tag]) if tag in new else raw for tag, vr, raw in self.body)
        return b"".join((self.preamble, struct.pack("<HH2sHI", 2, 0, b"UL", 4, len(meta)), meta, body))

    def check(self, i: int) -> None:
        """The splice must equal what pydicom writes for the same values."""
        ds = template()
        for tag, value in values(i, self.patients).items():
            (ds.file_meta if tag >> 16 == 2 else ds)[tag].value = value
        if self.encode(i) != encode_with_pydicom(ds):
            raise AssertionError(f"spliced instance {i} differs from pydicom's encoding")


def describe(i: int, patients: int) -> dict[str, str]:
    return {"patient_id": patient_id(i % patients), "study_uid": study_uid(i), "series_uid": series_uid(i),
            "sop_uid": sop_uid(i)}


def _check_answer(answer: requests.Response, count: int) -> None:
    if answer.status_code != 200:
        raise RuntimeError(f"POST /instances answered {answer.status_code}: {answer.text[:500]}")
    body = answer.json()
    results = body if isinstance(body, list) else [body]
    bad = [r for r in results if r.get("Status") not in ("Success", "AlreadyStored")]
    if len(results) != count or bad:
        raise RuntimeError(f"POST /instances stored {len(results)} of {count}: {bad[:3]}")


def populate(orthanc_base_url: str, studies: int, patients: int, auth: tuple | None = None, workers: int = 8,
             *, mode: str = "zip", batch: int = 0) -> list[dict]:
    """Stores `studies` one-instance studies spread over `patients` patients; one dict per study.

    mode "single" POSTs each instance on its own (one keep-alive session per worker thread);
    "zip" POSTs a ZIP of `batch` instances at a time (Orthanc >= 1.8.2 unpacks it).
    """
    if studies < 0 or patients < 1 or workers < 1 or mode not in ("single", "zip"):
        raise ValueError("need studies >= 0, patients >= 1, workers >= 1 and mode single or zip")
    batch = batch or (64 if mode == "zip" else 32)
    encoder = Encoder(patients)
    encoder.check(0)
    encoder.check(max(studies - 1, 0))
    url = orthanc_base_url.rstrip("/") + "/instances"
    local = threading.local()
    lock = threading.Lock()
    done = [0, 0]  # instances stored, last tenth reported
    started = time.perf_counter()

    sessions: list[requests.Session] = []

    def session() -> requests.Session:
        if not hasattr(local, "session"):
            local.session = requests.Session()
            local.session.auth = auth
            with lock:
                sessions.append(local.session)
        return local.session

    def report(count: int) -> None:
        with lock:
            done[0] += count
            tenth = done[0] * 10 // studies if studies else 0
            if tenth > done[1]:
                done[1] = tenth
                elapsed = time.perf_counter() - started
                print(f"populate: {done[1] * 10}% ({done[0]}/{studies}) in {elapsed:.1f} s, "
                      f"{done[0] / elapsed:.0f} instances/s", file=sys.stderr, flush=True)

    def send_single(chunk: range) -> None:
        s = session()
        for i in chunk:
            _check_answer(s.post(url, data=encoder.encode(i), timeout=120), 1)
        report(len(chunk))

    def send_zip(chunk: range) -> None:
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as z:
            for i in chunk:
                z.writestr(f"{i}.dcm", encoder.encode(i))
        answer = session().post(url, data=archive.getvalue(), headers={"Content-Type": "application/zip"},
                                timeout=600)
        _check_answer(answer, len(chunk))
        report(len(chunk))

    send: Callable[[range], None] = send_single if mode == "single" else send_zip
    chunks = [range(k, min(k + batch, studies)) for k in range(0, studies, batch)]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="populate") as pool:
        try:
            for _ in pool.map(send, chunks):
                pass
        except BaseException:
            pool.shutdown(cancel_futures=True)  # the first failure stops the run
            raise
        finally:
            pool.shutdown()
            for s in sessions:
                s.close()
    return [describe(i, patients) for i in range(studies)]


# ---- the script: a plain Orthanc, populated and queried ------------------------------------------

# Orthanc options acceptable for a bench only: no fsync of each stored file (the default since
# 1.7.4), no jobs saved, no stable-study events during the run, no storage cache.
FAST_OPTIONS = {"StorageCompression": False, "SyncStorageArea": False, "SaveJobs": False,
                "OverwriteInstances": False, "StableAge": 1000, "MaximumStorageCacheSize": 0,
                "HttpRequestTimeout": 600}


def data_directory(tmp: Path, studies: int) -> Path:
    """Where the index and the storage go: /dev/shm when it has room, else the temp folder.

    On this machine's ext4, creating the storage's files and folders costs Orthanc more than the
    rest of the ingest (inode allocation), and SQLite on tmpfs never waits for the disk."""
    shm = Path("/dev/shm")
    try:
        if shm.is_dir() and shutil.disk_usage(shm).free > 2 * 1024**3 + studies * 20_000:
            return Path(tempfile.mkdtemp(prefix="bench-index-", dir=shm))
    except OSError:
        pass
    return tmp / "data"


def timed(func: Callable[[], object], repeat: int = 5) -> tuple[float, object]:
    """Median milliseconds of `repeat` calls, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = func()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), result


def analyze(index: Path) -> None:
    """Runs SQLite's ANALYZE on Orthanc's index (Orthanc must be stopped), which Orthanc never does.

    Without the statistics it writes, SQLite joins DicomIdentifiers through its (tagGroup,
    tagElement) index, which matches every study for StudyInstanceUID: each lookup of a UID reads
    all the studies. With them, it uses the index on the value."""
    with closing(sqlite3.connect(index)) as db:
        db.execute("ANALYZE")
        db.commit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", type=int, nargs="?", default=100_000)
    parser.add_argument("--patients", type=int, default=0, help="default: studies / 4")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--mode", choices=("single", "zip"), default="zip")
    parser.add_argument("--batch", type=int, default=0, help="instances per ZIP / per work item")
    parser.add_argument("--no-analyze", action="store_true",
                        help="skip the second round of queries, after ANALYZE of the index")
    parser.add_argument("--keep", action="store_true", help="leave Orthanc running until SIGINT/SIGTERM")
    args = parser.parse_args()
    n, patients = args.studies, args.patients or max(1, args.studies // 4)

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.harness import OrthancProcess

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)  # also when started in the background, where SIGINT is ignored
    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
        data = data_directory(Path(tmp), n)
        # SQLite's temporary files (statement journals) default to /var/tmp, on the disk.
        os.environ["SQLITE_TMPDIR"] = str(data)
        proc = None
        try:
            proc = OrthancProcess(Path(tmp) / "orthanc", script=None, extra={
                **FAST_OPTIONS, "Plugins": [], "IndexDirectory": str(data),
                "StorageDirectory": str(data / "storage")})
            proc.start()
            print(f"Orthanc {proc.base} (pid {proc.pid}), index and storage in {data}", file=sys.stderr)
            t = time.perf_counter()
            studies = populate(proc.base, n, patients, workers=args.workers, mode=args.mode, batch=args.batch)
            elapsed = time.perf_counter() - t
            print(f"populated {n} studies ({patients} patients, mode {args.mode}) in {elapsed:.1f} s: "
                  f"{n / elapsed:.0f} studies/s")
            stats = requests.get(proc.url("/statistics"), timeout=60).json()
            print(f"statistics: {stats['CountPatients']} patients, {stats['CountStudies']} studies, "
                  f"{stats['CountInstances']} instances, disk {stats['TotalDiskSizeMB']} MB")
            assert stats["CountStudies"] == n, stats
            print("-- queries, index as Orthanc leaves it")
            query_benchmarks(proc.base, studies, patients)
            if not args.no_analyze:
                proc.stop()
                t = time.perf_counter()
                analyze(data / "index")
                print(f"-- queries after ANALYZE of the index (took {time.perf_counter() - t:.1f} s, "
                      "Orthanc stopped)")
                proc.start(timeout=120)
                query_benchmarks(proc.base, studies, patients)
            if args.keep:
                print(f"Orthanc keeps running at {proc.base}; SIGINT or SIGTERM stops it", file=sys.stderr)
                while True:
                    time.sleep(3600)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
        finally:
            if proc is not None:
                proc.stop()
            if data.parent != Path(tmp):
                shutil.rmtree(data, ignore_errors=True)
    return 0


def query_benchmarks(base: str, studies: list[dict], patients: int, repeat: int = 5) -> None:
    """Times /tools/find with value lists (checking the answers), and the per-study alternatives."""
    s = requests.Session()
    picked = studies[::max(1, len(studies) // 1000)][:1000]
    study_ids = {orthanc_id(st["patient_id"], st["study_uid"]) for st in picked}
    note = f"(median of {repeat})"

    def find(level: str, query: dict, expand: bool) -> list:
        answer = s.post(base + "/tools/find", json={"Level": level, "Query": query, "Expand": expand}, timeout=600)
        answer.raise_for_status()
        return answer.json()

    def ids(found: list) -> set[str]:
        return {f["ID"] if isinstance(f, dict) else f for f in found}

    uid_list = "\\".join(st["study_uid"] for st in picked)
    for expand in (False, True):
        ms, found = timed(lambda e=expand: find("Study", {"StudyInstanceUID": uid_list}, e), repeat)
        assert ids(found) == study_ids, f"find returned {len(found)} studies, not the {len(picked)} asked"
        if expand:
            assert {f["MainDicomTags"]["StudyInstanceUID"] for f in found} == {st["study_uid"] for st in picked}
        print(f"find Study by {len(picked)} StudyInstanceUIDs, Expand={expand}: {ms:.1f} ms {note}")
    for size in (10, 100, 250, 500):  # how the cost grows with the length of the list
        part = picked[:size]
        query = {"StudyInstanceUID": "\\".join(st["study_uid"] for st in part)}
        ms, found = timed(lambda q=query: find("Study", q, False), repeat)
        assert len(found) == len(part), f"find returned {len(found)} studies, not the {len(part)} asked"
        print(f"find Study by {len(part)} StudyInstanceUIDs, Expand=False: {ms:.1f} ms {note}")
    for size in (50, 100, 200):  # the same 1000 UIDs, in several finds of shorter lists
        chunks = [picked[k:k + size] for k in range(0, len(picked), size)]
        queries = [{"StudyInstanceUID": "\\".join(st["study_uid"] for st in chunk)} for chunk in chunks]
        ms, found = timed(lambda qs=queries: [i for q in qs for i in find("Study", q, False)], repeat)
        assert ids(found) == study_ids, f"chunked finds returned {len(found)} studies, not {len(picked)}"
        print(f"find Study by {len(picked)} StudyInstanceUIDs in {len(chunks)} finds of {size}: {ms:.1f} ms {note}")
    for level, tag, key, parents in (("Series", "SeriesInstanceUID", "series_uid", ("study_uid",)),
                                     ("Instance", "SOPInstanceUID", "sop_uid", ("study_uid", "series_uid"))):
        wanted = {orthanc_id(st["patient_id"], *(st[p] for p in parents), st[key]) for st in picked}
        query = {tag: "\\".join(st[key] for st in picked)}
        ms, found = timed(lambda lv=level, q=query: find(lv, q, False), repeat)
        assert ids(found) == wanted, f"{level}: {len(found)} found, not the {len(wanted)} asked"
        print(f"find {level} by {len(picked)} {tag}s, Expand=False: {ms:.1f} ms {note}")

    pids = [patient_id(p) for p in range(0, patients, max(1, patients // 50))][:50]
    chosen = set(pids)
    expected = {orthanc_id(st["patient_id"], st["study_uid"]) for st in studies if st["patient_id"] in chosen}
    for expand in (False, True):
        ms, found = timed(lambda e=expand: find("Study", {"PatientID": "\\".join(pids)}, e), repeat)
        assert ids(found) == expected, f"PatientID find returned {len(found)} studies, expected {len(expected)}"
        print(f"find Study by {len(pids)} PatientIDs ({len(expected)} studies), Expand={expand}: {ms:.1f} ms {note}")
    ms, found = timed(lambda: find("Patient", {"PatientID": "\\".join(pids)}, False), repeat)
    assert ids(found) == {orthanc_id(p) for p in pids}, found
    print(f"find Patient by {len(pids)} PatientIDs, Expand=False: {ms:.1f} ms {note}")

    one = picked[len(picked) // 2]
    ms, found = timed(lambda: find("Study", {"StudyInstanceUID": one["study_uid"]}, False), repeat)
    assert found == [orthanc_id(one["patient_id"], one["study_uid"])], found
    print(f"find Study by 1 StudyInstanceUID: {ms:.1f} ms {note}")
    ms, found = timed(lambda: s.post(base + "/tools/lookup", data=one["study_uid"], timeout=60).json(), repeat)
    assert [f["ID"] for f in found] == [orthanc_id(one["patient_id"], one["study_uid"])], found
    print(f"/tools/lookup of 1 StudyInstanceUID: {ms:.1f} ms {note}")
    first = picked[:100]
    ms, _ = timed(lambda: [s.post(base + "/tools/lookup", data=st["study_uid"], timeout=60).raise_for_status()
                           for st in first], 1)
    print(f"/tools/lookup of {len(first)} StudyInstanceUIDs one by one: {ms:.1f} ms in all")
    ms, _ = timed(lambda: [s.get(f"{base}/studies/{orthanc_id(st['patient_id'], st['study_uid'])}",
                                 timeout=60).raise_for_status() for st in picked], 1)
    print(f"GET /studies/{{id}} for {len(picked)} studies (id computed from PatientID and UID): {ms:.1f} ms in all")


if __name__ == "__main__":
    sys.exit(main())
