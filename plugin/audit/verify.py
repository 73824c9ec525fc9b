"""Proving the audit chain: read rows, head and checkpoints (database and file), and verify."""

from __future__ import annotations

from pathlib import Path

from plugin.audit.chain import ChainReport, verify
from plugin.audit.log import read_checkpoint_file
from plugin.store import audit as audit_rows
from plugin.store.db import Store


def verify_store(store: Store, key: bytes, checkpoint_file: Path) -> ChainReport:
    # The copy on disk first: a checkpoint is written there only after its commit, so the snapshot
    # read next holds every checkpoint the file names, even while other nodes sign new ones.
    on_disk = read_checkpoint_file(checkpoint_file)
    with store.read() as session:
        in_database = audit_rows.checkpoints(session)
        known = {(c["audit_id"], c["row_hash"], c["mac"]) for c in in_database}
        for checkpoint in on_disk:
            if (checkpoint["audit_id"], checkpoint["row_hash"], checkpoint["mac"]) not in known:
                return ChainReport(False, 0, len(in_database),
                                   f"checkpoint for row {checkpoint['audit_id']} is missing from the database",
                                   checkpoint["audit_id"])
        return verify(audit_rows.iter_events(session), in_database + on_disk, key, audit_rows.head(session))
