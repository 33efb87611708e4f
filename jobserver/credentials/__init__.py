"""Stored credentials: SSH keys and passwords, SMTP logins, encrypted at rest.

Jobs never carry secrets in their params: they name a credential (`"credential": "deploy"`),
and the worker that runs them decrypts it (`load_credential`). The API stores credentials
(`/v1/credentials`, manage_jobs) and encrypts them; no answer, event, result, error or log
line shows a secret.

- `keyring`: JOBSERVER_SECRET_KEY (its format, how to make one, rotation);
- `crypto`: AES-256-GCM sealing, bound to the credential's name and kind;
- `models`: the kinds, the decrypted `Credential`, the errors a job fails with;
- `validate`: a credential as a client gives it, checked for its kind;
- `sshkeys`: host keys and private keys read with asyncssh;
- `store`: `load_credential(pool, name, kind)`, for definitions.

    from jobserver.credentials import load_credential

    cred = await load_credential(ctx.pool, params["credential"], "smtp")
    await smtp.login(cred.username, cred.password)
"""

from __future__ import annotations

from jobserver.credentials.models import (
    KINDS,
    Credential,
    CredentialError,
    CredentialKindMismatch,
    CredentialNotFound,
    CredentialUnreadable,
    HostKey,
    SecretKeyMissing,
)
from jobserver.credentials.store import load_credential

__all__ = [
    "KINDS",
    "Credential",
    "CredentialError",
    "CredentialKindMismatch",
    "CredentialNotFound",
    "CredentialUnreadable",
    "HostKey",
    "SecretKeyMissing",
    "load_credential",
]
