"""Encryption of provider API keys at rest, with cryptography's MultiFernet.

Keys come from ENCRYPTION_KEYS (comma-separated Fernet keys, never SECRET_KEY). The first key
encrypts; every key decrypts, so a new key can be put first while old rows are re-encrypted with
``manage.py rotate_provider_keys``.
"""

from __future__ import annotations

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class KeyDecryptionError(Exception):
    """A stored key cannot be decrypted with any configured ENCRYPTION_KEYS."""


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured(
            "ENCRYPTION_KEYS is not set: provider API keys cannot be stored. Generate one with "
            '`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`.'
        )
    return MultiFernet([Fernet(key.encode()) for key in keys])


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.ENCRYPTION_KEYS))


def encrypt(plain: str) -> str:
    return fernet().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise KeyDecryptionError(
            "A stored provider key cannot be decrypted with the configured ENCRYPTION_KEYS."
        ) from None


def rotate(token: str) -> str:
    """The same secret, encrypted with the first (primary) key."""
    try:
        return fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise KeyDecryptionError(
            "A stored provider key cannot be decrypted with the configured ENCRYPTION_KEYS."
        ) from None
