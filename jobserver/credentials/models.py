"""What a stored credential is: its kinds, its name rule, the decrypted `Credential` a job
gets, and the errors a job fails with when it cannot have one.

Kinds and their fields (secret ones are sealed, the rest are plain columns):

| kind | plain | secret |
| --- | --- | --- |
| `ssh` | `username`, `hostKeys` (keys or fingerprints) | `privateKey`, `passphrase`, `password` |
| `smtp` | `username`; optional `host`, `port`, `tls` | `password` |

The errors are `PermanentError`s: a job naming a credential that is missing, of another kind,
or unreadable (no key, the wrong key) fails at once, without retry, with a code saying which.
Their messages name the credential and never hold a secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jobserver.core.names import NameRule
from jobserver.registry import PermanentError

KINDS = ("ssh", "smtp")
SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    "ssh": ("privateKey", "passphrase", "password"),
    "smtp": ("password",),
}
TLS_MODES = ("starttls", "tls", "none")
CREDENTIAL_NAME = NameRule("credential name", "A-Za-z0-9._:-", 200)


@dataclass(frozen=True)
class HostKey:
    """A pinned host key: its SHA256 fingerprint, and the key itself (an OpenSSH public key
    line, no comment) unless it was pinned by fingerprint alone."""

    fingerprint: str
    key: str | None = None

    def as_json(self) -> dict[str, str | None]:
        return {"fingerprint": self.fingerprint, "key": self.key}


@dataclass(frozen=True)
class Credential:
    """A stored credential, decrypted (in the worker only). Its repr shows no secret."""

    name: str
    kind: str
    username: str
    host_keys: tuple[HostKey, ...] = ()
    host: str | None = None
    port: int | None = None
    tls: str | None = None
    private_key: str | None = field(default=None, repr=False)
    passphrase: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    def secrets(self) -> list[str]:
        """The secret values, longest first: what must be scrubbed from any recorded text."""
        values = [v for v in (self.password, self.passphrase, self.private_key) if v]
        return sorted(values, key=len, reverse=True)


class CredentialError(PermanentError):
    """A job cannot have the credential it names."""

    code = "credential_error"


class CredentialNotFound(CredentialError):
    code = "credential_not_found"


class CredentialKindMismatch(CredentialError):
    code = "credential_kind"


class SecretKeyMissing(CredentialError):
    """JOBSERVER_SECRET_KEY is not set in this process."""

    code = "secret_key_missing"


class CredentialUnreadable(CredentialError):
    """The stored secret does not decrypt: its key is not configured, or the row was altered."""

    code = "credential_unreadable"
