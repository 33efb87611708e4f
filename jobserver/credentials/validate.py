"""A credential as a client gives it (`POST /v1/credentials`, `PUT /v1/credentials/{name}`),
checked field by field into what is stored: the plain columns and the secret fields to seal.

The request schema says the shape; this says what depends on `kind` and on the keys' contents
(a `RuleError` naming the field, the API's 422):
- `ssh`: a `privateKey` (imported with asyncssh, decrypted with `passphrase` when it is
  encrypted) and/or a `password`; one or more `hostKeys`, each a public key line or a SHA256
  fingerprint (`hostKeys[2]` names a bad one; repeats are dropped); no `host`/`port`/`tls`.
- `smtp`: a `password`; optional `host`, `port`, `tls`; no key fields.
The client key's public half is kept in clear (`publicKey`, with its fingerprint) so that an
operator can install it in `authorized_keys`; the private key is sealed as given.

`check_credential` is synchronous and may run bcrypt (an encrypted OpenSSH key): the API calls
it in a thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jobserver.core.errors import RuleError
from jobserver.credentials.models import SECRET_FIELDS, HostKey

SSH_ONLY = ("privateKey", "passphrase", "hostKeys")
SMTP_ONLY = ("host", "port", "tls")


@dataclass(frozen=True)
class CheckedCredential:
    """What is stored of a valid credential (the secret fields are sealed before)."""

    kind: str
    username: str
    host_keys: tuple[HostKey, ...] = ()
    public_key: str | None = None
    public_key_fingerprint: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    secret: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def secret_fields(self) -> list[str]:
        return sorted(self.secret)


def _refuse_fields(body: Mapping[str, Any], names: tuple[str, ...], kind: str) -> None:
    other = "smtp" if kind == "ssh" else "ssh"
    for name in names:
        if body.get(name) is not None:
            raise RuleError(name, f"only {other} credentials have {name}")


def _host_keys(entries: Any) -> tuple[HostKey, ...]:
    from jobserver.credentials.sshkeys import parse_host_key

    if not entries:
        raise RuleError(
            "hostKeys",
            "an ssh credential pins one or more host keys: public key lines"
            " (`ssh-ed25519 AAAA...`, see `ssh-keyscan`) or SHA256 fingerprints",
        )
    seen: dict[str, HostKey] = {}
    for i, entry in enumerate(entries):
        try:
            key = parse_host_key(entry)
        except ValueError as e:
            raise RuleError(f"hostKeys[{i}]", str(e)) from None
        known = seen.get(key.fingerprint)
        if known is None or (known.key is None and key.key is not None):
            seen[key.fingerprint] = key  # the full key wins over its fingerprint alone
    return tuple(seen.values())


def _ssh(body: Mapping[str, Any]) -> CheckedCredential:
    _refuse_fields(body, SMTP_ONLY, "ssh")
    private_key, passphrase = body.get("privateKey"), body.get("passphrase")
    password = body.get("password")
    if not private_key and not password:
        raise RuleError("privateKey", "an ssh credential needs a privateKey, a password or both")
    if passphrase and not private_key:
        raise RuleError("passphrase", "a passphrase goes with a privateKey")
    host_keys = _host_keys(body.get("hostKeys"))
    secret: dict[str, str] = {}
    public_key = public_fp = None
    if private_key:
        from jobserver.credentials.sshkeys import KeyProblem, client_key, fingerprint, public_line

        try:
            key = client_key(private_key, passphrase)
        except KeyProblem as e:
            raise RuleError(e.field, e.message) from None
        public_key, public_fp = public_line(key), fingerprint(key)
        secret["privateKey"] = private_key
        if passphrase:
            secret["passphrase"] = passphrase
    if password:
        secret["password"] = password
    return CheckedCredential(
        kind="ssh",
        username=body["username"],
        host_keys=host_keys,
        public_key=public_key,
        public_key_fingerprint=public_fp,
        secret=secret,
    )


def _smtp(body: Mapping[str, Any]) -> CheckedCredential:
    _refuse_fields(body, SSH_ONLY, "smtp")
    if not body.get("password"):
        raise RuleError("password", "an smtp credential needs a password")
    options = {k: body[k] for k in SMTP_ONLY if body.get(k) is not None}
    return CheckedCredential(
        kind="smtp",
        username=body["username"],
        options=options,
        secret={"password": body["password"]},
    )


def check_credential(body: Mapping[str, Any]) -> CheckedCredential:
    """`body` (already valid against the request schema) checked for its kind."""
    kind = body["kind"]
    checked = _ssh(body) if kind == "ssh" else _smtp(body)
    assert set(checked.secret) <= set(SECRET_FIELDS[kind])
    return checked
