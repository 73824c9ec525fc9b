"""The audit hash chain: canonical encoding, row hashes, and what verification catches."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from plugin.audit.chain import CHAINED_FIELDS, GENESIS_HASH, canonical, checkpoint_mac, row_hash, verify

KEY = b"checkpoint key kept outside the database"


def event(n: int, **changes: object) -> dict:
    row = {"id": n, "ts": f"2024-05-01T10:00:{n:02d}.000000Z", "actor": "drnkosi", "roles": "radiologist",
           "source_ip": "10.0.0.7", "method": "GET", "path": f"/studies/s{n}", "route_class": "studies",
           "level": "study", "orthanc_id": f"s{n}", "patient_id": "", "study_uid": "", "action": "view",
           "outcome": "allow", "reason": "admin", "count": 1, "detail": "", "prev_hash": ""}
    row.update(changes)
    return row


def chain(n: int) -> list[dict]:
    rows, prev = [], GENESIS_HASH
    for i in range(1, n + 1):
        row = event(i, prev_hash=prev)
        row["row_hash"] = row_hash(row)
        rows.append(row)
        prev = row["row_hash"]
    return rows


def relink(rows: list[dict], start: int) -> None:
    """Recompute hashes and links from row `start` on: a consistent rewrite by someone with DB access."""
    prev = rows[start - 2]["row_hash"] if start > 1 else GENESIS_HASH
    for row in rows[start - 1:]:
        row["prev_hash"] = prev
        row["row_hash"] = row_hash(row)
        prev = row["row_hash"]


def head_of(rows: list[dict]) -> dict:
    return {"last_id": rows[-1]["id"], "last_hash": rows[-1]["row_hash"]} if rows else \
        {"last_id": 0, "last_hash": GENESIS_HASH}


def checkpoint(rows: list[dict], audit_id: int, key: bytes = KEY) -> dict:
    digest = rows[audit_id - 1]["row_hash"]
    return {"audit_id": audit_id, "row_hash": digest, "created_at": "2024-05-01T11:00:00Z",
            "mac": checkpoint_mac(key, audit_id, digest)}


# -- encoding and hashing -----------------------------------------------------------------------------


def test_canonical_is_sorted_compact_utf8_json_of_the_chained_fields():
    row = event(1, actor="Zoë", prev_hash=GENESIS_HASH)
    expected = ('{"action":"view","actor":"Zoë","count":1,"detail":"","id":1,"level":"study",'
                '"method":"GET","orthanc_id":"s1","outcome":"allow","path":"/studies/s1","patient_id":"",'
                f'"prev_hash":"{GENESIS_HASH}","reason":"admin","roles":"radiologist",'
                '"route_class":"studies","source_ip":"10.0.0.7","study_uid":"",'
                '"ts":"2024-05-01T10:00:01.000000Z"}').encode()
    assert canonical(row) == expected


def test_row_hash_is_sha256_of_canonical():
    row = event(1, prev_hash=GENESIS_HASH)
    assert row_hash(row) == hashlib.sha256(canonical(row)).hexdigest()


def test_canonical_does_not_depend_on_key_order_or_unchained_fields():
    row = event(3, prev_hash="a" * 64)
    shuffled = dict(reversed(list(row.items())))
    shuffled["row_hash"] = "whatever"
    shuffled["extra"] = "not chained"
    assert canonical(shuffled) == canonical(row)


@pytest.mark.parametrize("field", CHAINED_FIELDS)
def test_every_chained_field_changes_the_hash(field):
    row = event(2, prev_hash="b" * 64)
    changed = {**row, field: 99 if isinstance(row[field], int) else str(row[field]) + "x"}
    assert row_hash(changed) != row_hash(row)


def test_checkpoint_mac_is_an_hmac_of_id_and_hash():
    assert checkpoint_mac(KEY, 7, "c" * 64) == hmac.new(KEY, f"7:{'c' * 64}".encode(), hashlib.sha256).hexdigest()
    assert checkpoint_mac(b"other key", 7, "c" * 64) != checkpoint_mac(KEY, 7, "c" * 64)


# -- verification -------------------------------------------------------------------------------------


def test_good_chain_verifies():
    rows = chain(5)
    report = verify(rows, [checkpoint(rows, 3), checkpoint(rows, 5)], KEY, head_of(rows))
    assert (report.ok, report.rows, report.checkpoints, report.bad_row) == (True, 5, 2, None)


def test_empty_chain_verifies():
    assert verify([], [], KEY, head_of([])).ok


def test_edited_field_names_that_row():
    rows = chain(5)
    rows[2]["reason"] = "no grant for this resource"
    report = verify(rows, [], KEY, head_of(rows))
    assert not report.ok and report.bad_row == 3 and "row 3" in report.problem


def test_edited_row_with_its_hash_recomputed_breaks_the_next_link():
    rows = chain(5)
    rows[2]["actor"] = "someone-else"
    rows[2]["row_hash"] = row_hash(rows[2])
    report = verify(rows, [], KEY, head_of(rows))
    assert not report.ok and report.bad_row == 4 and "link" in report.problem


def test_deleted_middle_row_is_named():
    rows = chain(5)
    del rows[2]
    report = verify(rows, [], KEY, head_of(rows))
    assert not report.ok and report.bad_row == 3 and "missing" in report.problem


def test_reordered_rows_are_detected():
    rows = chain(5)
    rows[1], rows[2] = rows[2], rows[1]
    report = verify(rows, [], KEY, head_of(rows))
    assert not report.ok and report.bad_row == 2


def test_renumbered_rows_after_a_deletion_are_detected():
    rows = chain(5)
    del rows[2]
    for i, row in enumerate(rows, start=1):
        row["id"] = i
    report = verify(rows, [], KEY, head_of(rows))
    assert not report.ok and report.bad_row == 3


def test_first_row_must_link_to_genesis():
    rows = chain(2)
    rows[0]["prev_hash"] = "f" * 64
    rows[0]["row_hash"] = row_hash(rows[0])
    report = verify(rows, [], KEY, None)
    assert not report.ok and report.bad_row == 1


def test_consistent_rewrite_passes_without_checkpoints():
    # Why checkpoints exist: without one, a rewrite from row k that redoes every hash is invisible.
    rows = chain(6)
    rows[2]["actor"] = "cover-up"
    relink(rows, 3)
    assert verify(rows, [], KEY, head_of(rows)).ok


def test_consistent_rewrite_is_caught_by_a_checkpoint_signed_before():
    rows = chain(6)
    signed = checkpoint(rows, 4)
    rows[2]["actor"] = "cover-up"
    relink(rows, 3)
    report = verify(rows, [signed], KEY, head_of(rows))
    assert not report.ok and report.bad_row == 4 and "rewritten" in report.problem


def test_truncating_signed_rows_is_caught_even_with_the_head_rewritten():
    rows = chain(6)
    signed = checkpoint(rows, 6)
    del rows[4:]
    report = verify(rows, [signed], KEY, head_of(rows))
    assert not report.ok and report.bad_row == 6 and "missing" in report.problem


def test_bad_checkpoint_mac_is_detected():
    rows = chain(4)
    forged = {**checkpoint(rows, 4), "mac": "0" * 64}
    report = verify(rows, [forged], KEY, head_of(rows))
    assert not report.ok and report.bad_row == 4 and "signature" in report.problem


def test_checkpoint_signed_with_another_key_is_detected():
    rows = chain(4)
    report = verify(rows, [checkpoint(rows, 2, key=b"attacker's key")], KEY, head_of(rows))
    assert not report.ok and "signature" in report.problem


def test_resigned_rewrite_needs_the_key():
    # An attacker who rewrites and re-signs with their own key is caught by the signature check.
    rows = chain(4)
    rows[0]["actor"] = "cover-up"
    relink(rows, 1)
    report = verify(rows, [checkpoint(rows, 4, key=b"guess")], KEY, head_of(rows))
    assert not report.ok


def test_disagreeing_checkpoints_for_one_row_are_detected():
    rows = chain(4)
    genuine = checkpoint(rows, 3)
    other = dict(genuine, row_hash="e" * 64, mac=checkpoint_mac(KEY, 3, "e" * 64))
    report = verify(rows, [genuine, other], KEY, head_of(rows))
    assert not report.ok and report.bad_row == 3 and "disagree" in report.problem


def test_the_same_checkpoint_twice_is_fine():
    rows = chain(4)
    assert verify(rows, [checkpoint(rows, 3), checkpoint(rows, 3)], KEY, head_of(rows)).ok


def test_head_naming_a_later_row_detects_a_truncated_tail():
    rows = chain(5)
    head = head_of(rows)
    del rows[3:]
    report = verify(rows, [], KEY, head)
    assert not report.ok and "head" in report.problem and report.bad_row == 4


def test_head_with_a_different_hash_is_detected():
    rows = chain(3)
    report = verify(rows, [], KEY, {"last_id": 3, "last_hash": "d" * 64})
    assert not report.ok and "head" in report.problem
