"""The audit hash chain and its checkpoints: canonical encoding, hashing, verification (pure)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS_HASH = "0" * 64

# The fields a row's hash covers, in this order. `row_hash` itself is not covered.
CHAINED_FIELDS = ("id", "ts", "actor", "roles", "source_ip", "method", "path", "route_class", "level",
                  "orthanc_id", "patient_id", "study_uid", "action", "outcome", "reason", "count",
                  "detail", "prev_hash")


def canonical(row: Mapping[str, Any]) -> bytes:
    """A stable byte encoding of a row: JSON of the chained fields, sorted, no spaces."""
    return json.dumps({f: row[f] for f in CHAINED_FIELDS}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def row_hash(row: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(row)).hexdigest()


def checkpoint_mac(key: bytes, audit_id: int, hash_hex: str) -> str:
    return hmac.new(key, f"{audit_id}:{hash_hex}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    rows: int
    checkpoints: int
    problem: str = ""
    bad_row: int | None = None


def verify(rows: Iterable[Mapping[str, Any]], checkpoints: Iterable[Mapping[str, Any]], key: bytes,
           head: Mapping[str, Any] | None) -> ChainReport:
    """Walk the chain in id order; name the first row whose link or hash is wrong.

    Checkpoints (HMACs made with a key outside the database) catch a chain rewritten consistently
    from some row on: the rewritten hash no longer matches the one the checkpoint signed. The
    caller passes the checkpoints from the database and from the file kept beside the key, so
    deleting them from the database does not hide a rewrite.
    """
    signed: dict[int, str] = {}
    for cp in sorted(checkpoints, key=lambda c: c["audit_id"]):
        if not hmac.compare_digest(cp["mac"], checkpoint_mac(key, cp["audit_id"], cp["row_hash"])):
            return ChainReport(False, 0, 0, f"checkpoint for row {cp['audit_id']} has a bad signature",
                               cp["audit_id"])
        if signed.get(cp["audit_id"], cp["row_hash"]) != cp["row_hash"]:
            return ChainReport(False, 0, 0, f"two checkpoints for row {cp['audit_id']} disagree", cp["audit_id"])
        signed[cp["audit_id"]] = cp["row_hash"]
    prev_hash, expected_id, count = GENESIS_HASH, 1, 0
    for row in rows:
        rid = row["id"]
        if rid != expected_id:
            return ChainReport(False, count, len(signed), f"row {expected_id} is missing", expected_id)
        if row["prev_hash"] != prev_hash:
            return ChainReport(False, count, len(signed), f"row {rid} does not link to row {rid - 1}", rid)
        computed = row_hash(row)
        if row["row_hash"] != computed:
            return ChainReport(False, count, len(signed), f"row {rid} was altered (hash mismatch)", rid)
        if rid in signed and signed[rid] != computed:
            return ChainReport(False, count, len(signed),
                               f"row {rid} differs from its signed checkpoint (chain rewritten)", rid)
        prev_hash, expected_id, count = computed, rid + 1, count + 1
    missing = [aid for aid in signed if aid >= expected_id]
    if missing:
        return ChainReport(False, count, len(signed), f"row {missing[0]} is signed by a checkpoint but missing",
                           missing[0])
    if head is not None and (head["last_id"] != count or head["last_hash"] != prev_hash):
        return ChainReport(False, count, len(signed), "the chain head does not match the last row "
                           f"(head names row {head['last_id']}, last row is {count})", count + 1)
    return ChainReport(True, count, len(signed))
