"""The cipher of contact details at rest (ContactKeyFile): recipients and content of queued messages,
share recipients, and TOTP secrets."""

from __future__ import annotations

from collections.abc import Iterable

from cryptography.fernet import Fernet, MultiFernet


def contact_cipher(key: bytes, previous: Iterable[bytes] = ()) -> MultiFernet:
    """A MultiFernet: it encrypts with `key` and still reads what older keys (ContactPreviousKeyFiles)
    encrypted, so a key is rotated by putting a new one first (and `gatectl contacts-reencrypt`
    rewrites the old tokens, after which the old key can go)."""
    return MultiFernet([Fernet(key.strip()), *(Fernet(old.strip()) for old in previous)])
