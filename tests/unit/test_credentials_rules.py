"""Pure rules of stored credentials: the secret key's format (and that no error or repr shows
it), sealing, host key parsing and the checks of a credential's fields."""

from __future__ import annotations

import base64

import asyncssh
import pytest

from jobserver.config import ConfigError, Settings
from jobserver.core.errors import RuleError
from jobserver.credentials.crypto import seal, unseal
from jobserver.credentials.keyring import key_id, keyring_for, parse_keyring
from jobserver.credentials.models import Credential, CredentialUnreadable
from jobserver.credentials.sshkeys import parse_host_key
from jobserver.credentials.validate import check_credential

KEY = base64.urlsafe_b64encode(bytes(range(32))).decode()
OTHER = base64.urlsafe_b64encode(bytes(range(1, 33))).decode()
PRIVATE = asyncssh.generate_private_key("ssh-ed25519")
PRIVATE_TEXT = PRIVATE.export_private_key().decode()
HOST = asyncssh.generate_private_key("ssh-ed25519").convert_to_public()
HOST_LINE = " ".join(HOST.export_public_key().decode().split()[:2])


# -- JOBSERVER_SECRET_KEY --------------------------------------------------------------------------


def test_a_key_is_32_bytes_of_base64_with_or_without_padding() -> None:
    ring = parse_keyring(KEY)
    assert ring.current == (key_id(bytes(range(32))), bytes(range(32)))
    assert parse_keyring(KEY.rstrip("=")).current == ring.current
    standard = base64.b64encode(bytes([251] * 32)).decode()  # holds '+' or '/'
    assert parse_keyring(standard).current[1] == bytes([251] * 32)


def test_several_keys_the_first_encrypts() -> None:
    ring = parse_keyring(f"{OTHER}, {KEY}")
    assert [i for i, _ in ring.keys] == [key_id(bytes(range(1, 33))), key_id(bytes(range(32)))]
    assert ring.get(key_id(bytes(range(32)))) == bytes(range(32))
    assert ring.get("k000000000000") is None
    assert "\\x" not in repr(ring) and KEY not in repr(ring)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("not base64 at all!", "key 1 is not base64"),
        (base64.urlsafe_b64encode(b"short").decode(), "key 1 holds 5 bytes, expected 32"),
        (f"{KEY},{base64.urlsafe_b64encode(bytes(64)).decode()}", "key 2 holds 64 bytes"),
        (" , ", "no key given"),
    ],
)
def test_a_bad_key_is_refused_at_start_without_showing_it(raw: str, why: str) -> None:
    with pytest.raises(ConfigError) as e:
        Settings.from_env({"JOBSERVER_SECRET_KEY": raw})
    assert why in str(e.value) and str(e.value).startswith("invalid JOBSERVER_SECRET_KEY: ")
    for part in filter(None, (p.strip() for p in raw.split(","))):
        assert part not in str(e.value)


def test_the_settings_repr_hides_the_key() -> None:
    settings = Settings.from_env({"JOBSERVER_SECRET_KEY": KEY})
    assert settings.secret_key == KEY and KEY not in repr(settings)
    assert keyring_for(settings.secret_key) is keyring_for(KEY)  # parsed once
    assert keyring_for("") is None


# -- sealing ---------------------------------------------------------------------------------------


def test_sealed_secrets_are_bound_to_name_and_kind() -> None:
    ring = parse_keyring(KEY)
    kid, sealed = seal(ring, "deploy", "ssh", {"password": "hunter2"})
    assert unseal(ring, "deploy", "ssh", kid, sealed) == {"password": "hunter2"}
    assert seal(ring, "deploy", "ssh", {"password": "hunter2"})[1] != sealed  # a fresh nonce
    for name, kind in (("deploy2", "ssh"), ("deploy", "smtp")):
        with pytest.raises(CredentialUnreadable, match="does not decrypt"):
            unseal(ring, name, kind, kid, sealed)
    with pytest.raises(CredentialUnreadable, match="unknown format"):
        unseal(ring, "deploy", "ssh", kid, b"\x02" + sealed[1:])
    with pytest.raises(CredentialUnreadable, match="does not decrypt"):
        unseal(ring, "deploy", "ssh", kid, sealed[:-1] + bytes([sealed[-1] ^ 1]))


def test_a_credential_repr_shows_no_secret() -> None:
    cred = Credential("deploy", "ssh", "root", private_key=PRIVATE_TEXT, password="hunter2")
    assert "hunter2" not in repr(cred) and "PRIVATE" not in repr(cred)
    assert cred.secrets() == [PRIVATE_TEXT, "hunter2"]


# -- host keys -------------------------------------------------------------------------------------


def test_host_keys_as_lines_or_sha256_fingerprints() -> None:
    fp = HOST.get_fingerprint("sha256")
    parsed = parse_host_key(f"{HOST_LINE} root@somewhere\n")
    assert (parsed.fingerprint, parsed.key) == (fp, HOST_LINE)
    assert parse_host_key(fp).fingerprint == fp and parse_host_key(fp).key is None
    for bad, why in (
        ("SHA256:tooshort", "not a SHA256 fingerprint"),
        ("MD5:" + ":".join(["ab"] * 16), "MD5 fingerprints are not accepted"),
        (":".join(["ab"] * 16), "MD5 fingerprints are not accepted"),
        ("ssh-ed25519 AAAAnotakey", "not a public key"),
        (f"{HOST_LINE}\n{HOST_LINE}", "one public key line"),
        (PRIVATE_TEXT, "one public key line"),
    ):
        with pytest.raises(ValueError, match=why):
            parse_host_key(bad)


# -- a credential's fields -------------------------------------------------------------------------

SSH = {"kind": "ssh", "username": "root", "privateKey": PRIVATE_TEXT, "hostKeys": [HOST_LINE]}


def test_an_ssh_credential_keeps_the_public_half_and_seals_the_rest() -> None:
    checked = check_credential(
        {**SSH, "password": "sealed-pass-91", "hostKeys": [HOST_LINE, HOST_LINE]}
    )
    assert checked.secret == {"privateKey": PRIVATE_TEXT, "password": "sealed-pass-91"}
    assert checked.secret_fields == ["password", "privateKey"]
    assert checked.public_key == " ".join(PRIVATE.export_public_key().decode().split()[:2])
    assert checked.public_key_fingerprint == PRIVATE.get_fingerprint("sha256")
    assert len(checked.host_keys) == 1  # repeats dropped
    assert "sealed-pass-91" not in repr(checked) and "PRIVATE" not in repr(checked)


def test_an_encrypted_key_needs_its_passphrase() -> None:
    # few bcrypt rounds: a test need not spend seconds on the KDF
    locked = PRIVATE.export_private_key(
        "openssh", "sesame", rounds=4, ignore_few_rounds=True
    ).decode()
    checked = check_credential({**SSH, "privateKey": locked, "passphrase": "sesame"})
    assert checked.secret == {"privateKey": locked, "passphrase": "sesame"}
    assert checked.public_key_fingerprint == PRIVATE.get_fingerprint("sha256")
    for passphrase in (None, "wrong"):
        with pytest.raises(RuleError) as e:
            check_credential({**SSH, "privateKey": locked, "passphrase": passphrase})
        assert e.value.field == "passphrase"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**SSH, "privateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nnope\n"}, "privateKey"),
        ({**SSH, "privateKey": HOST_LINE}, "privateKey"),
        ({k: v for k, v in SSH.items() if k != "privateKey"}, "privateKey"),
        ({**SSH, "privateKey": None, "password": "pw", "passphrase": "x"}, "passphrase"),
        ({**SSH, "hostKeys": []}, "hostKeys"),
        ({**SSH, "hostKeys": [HOST_LINE, "nonsense"]}, "hostKeys[1]"),
        ({**SSH, "port": 22}, "port"),
        ({**SSH, "tls": "starttls"}, "tls"),
        ({"kind": "smtp", "username": "u"}, "password"),
        ({"kind": "smtp", "username": "u", "password": "p", "hostKeys": [HOST_LINE]}, "hostKeys"),
        ({"kind": "smtp", "username": "u", "password": "p", "privateKey": "k"}, "privateKey"),
    ],
)
def test_fields_that_do_not_fit_the_kind_are_refused_by_name(
    body: dict[str, object], field: str
) -> None:
    with pytest.raises(RuleError) as e:
        check_credential(body)
    assert e.value.field == field
    assert "nope" not in e.value.message and HOST_LINE not in e.value.message  # no echo


def test_an_smtp_credential_keeps_its_server_options() -> None:
    checked = check_credential(
        {"kind": "smtp", "username": "apikey", "password": "p", "host": "smtp.x", "tls": "tls"}
    )
    assert checked.options == {"host": "smtp.x", "tls": "tls"} and checked.secret == {
        "password": "p"
    }
