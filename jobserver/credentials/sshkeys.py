"""SSH keys of a credential, read with asyncssh: pinned host keys and the client's private key.

- `parse_host_key(text)`: an OpenSSH public key line (`ssh-ed25519 AAAA... [comment]`) or a
  SHA256 fingerprint (`SHA256:` and 43 base64 characters, as `ssh-keygen -lf` prints it);
  ValueError otherwise. MD5 fingerprints are refused: they no longer identify a key.
- `client_key(private_key, passphrase)`: the key asyncssh will sign with (OpenSSH or PEM
  form, decrypted with the passphrase when it is encrypted); `KeyProblem` naming
  `privateKey` or `passphrase` otherwise.
- `public_line(key)`, `fingerprint(key)`: how answers and errors show a key.

asyncssh is imported on first use: most processes never read an SSH key, and decrypting an
encrypted OpenSSH key runs bcrypt, so callers run these in a thread.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from jobserver.credentials.models import HostKey

if TYPE_CHECKING:
    import asyncssh

FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")
MD5 = re.compile(r"([0-9a-fA-F]{2}:){15}[0-9a-fA-F]{2}")


class KeyProblem(ValueError):
    """A private key that cannot be used; `field` names the credential field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def fingerprint(key: asyncssh.SSHKey) -> str:
    return str(key.get_fingerprint("sha256"))


def public_line(key: asyncssh.SSHKey) -> str:
    """`<algorithm> <base64>`: the OpenSSH public key line without its comment."""
    raw = key.export_public_key("openssh").decode()
    return " ".join(raw.split()[:2])


def parse_host_key(text: str) -> HostKey:
    """A pinned host key from a public key line or a SHA256 fingerprint (see module doc)."""
    entry = text.strip()
    if entry.upper().startswith("SHA256:"):
        if not FINGERPRINT.fullmatch("SHA256:" + entry[7:]):
            raise ValueError(
                "not a SHA256 fingerprint: expected SHA256: and 43 base64 characters"
                " (as `ssh-keygen -lf` prints it)"
            )
        return HostKey(fingerprint="SHA256:" + entry[7:])
    if entry.upper().startswith("MD5:") or MD5.fullmatch(entry):
        raise ValueError("MD5 fingerprints are not accepted: give the key or its SHA256 one")
    if "\n" in entry or not entry:
        raise ValueError("expected one public key line (`ssh-ed25519 AAAA...`)")
    import asyncssh

    try:
        key = asyncssh.import_public_key(entry)
    except Exception:  # any parse failure of client input is a refusal, never a 500
        raise ValueError(
            "not a public key: expected an OpenSSH public key line (`ssh-ed25519 AAAA...`,"
            " e.g. a line of `ssh-keyscan` output without the host) or a SHA256 fingerprint"
        ) from None
    return HostKey(fingerprint=fingerprint(key), key=public_line(key))


def client_key(private_key: str, passphrase: str | None) -> asyncssh.SSHKey:
    """The private key, imported (see module doc); never quotes the key in an error."""
    import asyncssh

    try:
        return asyncssh.import_private_key(private_key, passphrase or None)
    except asyncssh.KeyEncryptionError:
        raise KeyProblem("passphrase", "does not decrypt the private key") from None
    except Exception as e:  # any parse failure of client input is a refusal, never a 500
        if isinstance(e, asyncssh.KeyImportError) and "passphrase" in str(e).lower():
            raise KeyProblem(
                "passphrase", "the private key is encrypted: give its passphrase"
            ) from None
        raise KeyProblem(
            "privateKey",
            "not a private key asyncssh can read: expected one in OpenSSH or PEM form",
        ) from None
