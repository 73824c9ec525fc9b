"""Rotating the contact-details key: older keys still read, `contacts-reencrypt` rewrites everything
with the new one, after which the old key can go."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet, InvalidToken

from plugin.cli import main
from plugin.config import ConfigError, load_gate_config
from plugin.notify.cipher import contact_cipher
from plugin.store import contacts
from plugin.store.models import Share, User
from tests.unit.conftest import T0


def _share(cipher, email: str) -> Share:
    return Share(token_hash="0" * 64, patient_id="P1", created_by="root1", created_at=T0, expires_at=T0 + 3600,
                 downloads=0, one_time=False, opens=0, language="en", consent="null",
                 recipient_email=cipher.encrypt(email.encode()).decode(), recipient_mobile=None)


def test_an_old_key_still_reads_and_reencrypt_moves_everything_to_the_new_one(store):
    old, new = Fernet.generate_key(), Fernet.generate_key()
    before = contact_cipher(old)
    with store.transaction() as db:
        db.add(_share(before, "thandi@example.co.za"))
        db.add(User(username="u1", roles="", created_at=T0, updated_at=T0,
                     totp_secret=before.encrypt(b"JBSWY3DPEHPK3PXP").decode()))
    rotated = contact_cipher(new, [old])
    with store.transaction() as db:
        assert contacts.reencrypt(db, rotated) == (2, 0)
    only_new = contact_cipher(new)
    with store.read() as db:
        share = db.query(Share).one()
        user = db.query(User).one()
        assert only_new.decrypt(share.recipient_email.encode()) == b"thandi@example.co.za"
        assert only_new.decrypt(user.totp_secret.encode()) == b"JBSWY3DPEHPK3PXP"
        with pytest.raises(InvalidToken):
            contact_cipher(old).decrypt(share.recipient_email.encode())


def test_a_value_no_key_reads_is_counted_and_left_alone(store):
    with store.transaction() as db:
        db.add(_share(contact_cipher(Fernet.generate_key()), "lost@example.co.za"))
    with store.transaction() as db:
        assert contacts.reencrypt(db, contact_cipher(Fernet.generate_key())) == (0, 1)


def test_previous_key_files_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="ContactPreviousKeyFiles"):
        load_gate_config({"Gate": {"ContactPreviousKeyFiles": ["missing.key"]}}, tmp_path)
    with pytest.raises(ConfigError, match="ContactPreviousKeyFiles"):
        load_gate_config({"Gate": {"ContactPreviousKeyFiles": [""]}}, tmp_path)


def test_gatectl_contacts_reencrypt_after_a_rotation(tmp_path, capsys):
    state = tmp_path / "state"
    config = tmp_path / "orthanc.json"
    config.write_text(json.dumps({"StorageDirectory": str(state)}))
    assert main(["db-upgrade", "--config", str(config)]) == 0
    old_key = (state / "gate-contact.key").read_bytes()
    (tmp_path / "old.key").write_bytes(old_key)
    (tmp_path / "new.key").write_bytes(Fernet.generate_key())
    config.write_text(json.dumps({"StorageDirectory": str(state), "Gate": {
        "ContactKeyFile": "new.key", "ContactPreviousKeyFiles": ["old.key"]}}))
    assert main(["contacts-reencrypt", "--config", str(config)]) == 0
    assert "values re-encrypted" in capsys.readouterr().out
