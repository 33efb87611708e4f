"""The keys that encrypt stored credentials, read from `JOBSERVER_SECRET_KEY`.

Format: 32 random bytes, URL-safe base64 (44 characters with its `=` padding, which may be
left out; standard base64 with `+` and `/` is read too). Generate one with

    python3 -c 'import base64, secrets
    print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())'

or `openssl rand -base64 32`. Several keys, comma-separated, prepare a rotation: the first one
encrypts every credential stored from then on, and each one decrypts the rows stored under it.
Every row records the id of its key (`key_id`: `k` + 12 hex digits of a SHA-256 of the key,
which tells keys apart and reveals nothing of them), so a row whose key is gone is named as
such rather than failing as garbage.

The API encrypts with the keyring of its settings (`keyring_for`); a worker decrypts with the
one of its environment (`current_keyring`), which a test may `configure`. No keyring (the
variable unset): nothing can be stored or read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from functools import lru_cache

KEY_BYTES = 32


@dataclass(frozen=True)
class Keyring:
    """(key id, key) pairs; the first one encrypts. Its repr shows the ids alone."""

    keys: tuple[tuple[str, bytes], ...]

    @property
    def current(self) -> tuple[str, bytes]:
        return self.keys[0]

    def get(self, key_id: str) -> bytes | None:
        return next((k for i, k in self.keys if i == key_id), None)

    def __repr__(self) -> str:
        return f"Keyring(ids={[i for i, _ in self.keys]})"


def key_id(key: bytes) -> str:
    """The id a row stores for the key that encrypted it."""
    return "k" + hashlib.sha256(b"jobserver credential key\x00" + key).hexdigest()[:12]


def _decode(text: str, position: int) -> bytes:
    raw = text.strip().replace("+", "-").replace("/", "_")
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"key {position} is not base64 (expected 32 random bytes)") from None
    if len(key) != KEY_BYTES:
        raise ValueError(f"key {position} holds {len(key)} bytes, expected {KEY_BYTES}")
    return key


def parse_keyring(raw: str) -> Keyring:
    """The keys of a JOBSERVER_SECRET_KEY value; ValueError says what is wrong without
    quoting the value."""
    parts = [p for p in raw.split(",") if p.strip()]
    if not parts:
        raise ValueError("no key given")
    keys = tuple((key_id(k), k) for k in (_decode(p, i + 1) for i, p in enumerate(parts)))
    return Keyring(keys)


@lru_cache(maxsize=8)
def keyring_for(raw: str) -> Keyring | None:
    """The keyring of a settings value (None when unset), parsed once per value."""
    return parse_keyring(raw) if raw else None


_UNSET = object()
_configured: object = _UNSET


def configure(keyring: object = _UNSET) -> None:
    """Use `keyring` in this process from now on (None: none at all); without an argument,
    read JOBSERVER_SECRET_KEY from the environment again on next use."""
    global _configured
    _configured = keyring
    _from_env.cache_clear()


@lru_cache(maxsize=1)
def _from_env() -> Keyring | None:
    from jobserver.config import Settings

    return keyring_for(Settings.from_env().secret_key)


def current_keyring() -> Keyring | None:
    """This process's keyring: the one `configure`d, else JOBSERVER_SECRET_KEY's."""
    if _configured is _UNSET:
        return _from_env()
    return _configured if isinstance(_configured, Keyring) else None
