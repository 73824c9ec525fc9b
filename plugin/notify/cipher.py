"""The cipher of contact details at rest (ContactKeyFile): recipients and content of queued messages."""

from __future__ import annotations

from cryptography.fernet import Fernet, MultiFernet


def contact_cipher(key: bytes) -> MultiFernet:
    """A MultiFernet so that a new key can be put first later and old tokens still read."""
    return MultiFernet([Fernet(key.strip())])
