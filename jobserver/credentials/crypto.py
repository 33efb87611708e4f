"""Sealing a credential's secret fields: AES-256-GCM under the keyring's current key.

A sealed value is `b"\\x01" + nonce (12 random bytes) + ciphertext-and-tag`; the leading byte
is the format version. The associated data binds the ciphertext to its row: the credential's
name and kind. A sealed value copied into another row (another name, another kind) fails
authentication instead of decrypting, so rows cannot be swapped to make a job use another
credential's secret. The plaintext is the JSON object of the secret fields (`privateKey`,
`passphrase`, `password`); it exists only in the API process while it seals and in the worker
that unseals.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from jobserver.credentials.keyring import Keyring
from jobserver.credentials.models import CredentialUnreadable

FORMAT = 1
NONCE_BYTES = 12


def associated_data(name: str, kind: str) -> bytes:
    return b"jobserver credential v1\x00" + name.encode() + b"\x00" + kind.encode()


def seal(keyring: Keyring, name: str, kind: str, secret: Mapping[str, str]) -> tuple[str, bytes]:
    """(key id, sealed bytes) of `secret` for the credential `name` of `kind`."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    kid, key = keyring.current
    nonce = os.urandom(NONCE_BYTES)
    plaintext = json.dumps(dict(secret), separators=(",", ":")).encode()
    sealed = AESGCM(key).encrypt(nonce, plaintext, associated_data(name, kind))
    return kid, bytes([FORMAT]) + nonce + sealed


def unseal(keyring: Keyring, name: str, kind: str, kid: str, sealed: bytes) -> dict[str, str]:
    """The secret fields sealed for `name`; `CredentialUnreadable` when the key is not in the
    keyring, or the bytes were not sealed for this name and kind under that key."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = keyring.get(kid)
    if key is None:
        raise CredentialUnreadable(
            f"credential {name!r} was stored under key {kid}, which JOBSERVER_SECRET_KEY does"
            " not hold (add the old key after the new one, comma-separated)"
        )
    if len(sealed) <= 1 + NONCE_BYTES or sealed[0] != FORMAT:
        raise CredentialUnreadable(f"credential {name!r}: stored secret has an unknown format")
    nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
    try:
        plaintext = AESGCM(key).decrypt(nonce, body, associated_data(name, kind))
    except InvalidTag:
        raise CredentialUnreadable(
            f"credential {name!r}: the stored secret does not decrypt for this name and kind"
            f" under key {kid} (altered, or copied from another row)"
        ) from None
    value = json.loads(plaintext)
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise CredentialUnreadable(f"credential {name!r}: stored secret is not an object")
    return value
