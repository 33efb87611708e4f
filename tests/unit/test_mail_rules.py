"""The pure parts of `mail.send`: addresses, templates, attachments and the message built."""

from __future__ import annotations

import base64
import email
import email.policy
import os
from pathlib import Path

import pytest

from jobserver.config import Settings
from jobserver.mail.addresses import AddressError, parse_address
from jobserver.mail.attachments import (
    Attachment,
    AttachmentError,
    declared_size,
    decode_content,
    read_file,
)
from jobserver.mail.config import mail_config_from_settings, server_from_settings
from jobserver.mail.message import MessageError, Outgoing, build_message
from jobserver.mail.templates import (
    MAX_RANGE,
    TemplateParts,
    TemplateProblem,
    check_syntax,
    render_template,
)

# -- addresses ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name", "spec"),
    [
        ("ann@example.com", "", "ann@example.com"),
        ("Ann Example <ann@Example.COM>", "Ann Example", "ann@example.com"),
        ('"Doe, Jane" <jane@example.com>', "Doe, Jane", "jane@example.com"),
        ("Zoë <zoe@example.com>", "Zoë", "zoe@example.com"),
    ],
)
def test_addresses_with_and_without_display_names(text: str, name: str, spec: str) -> None:
    a = parse_address(text)
    assert (a.display_name, a.addr_spec) == (name, spec)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "  ",
        "nobody",
        "ann@",
        "@example.com",
        "a@example.com, b@example.com",
        "friends: a@example.com, b@example.com;",
        "ann@example.com\r\nBcc: spy@example.com",
        "ann@exa mple.com",
        "Ann <ann@@example.com>",
        "x" * 1000 + "@example.com",
    ],
)
def test_what_is_not_one_address_is_refused(text: str) -> None:
    with pytest.raises(AddressError):
        parse_address(text)


# -- templates ----------------------------------------------------------------------------------


def test_html_is_escaped_text_and_subject_are_not() -> None:
    parts = TemplateParts("Hi {{ n }}", "Hi {{ n }}", "<p>{{ n }} {{ n | safe }}</p>")
    out = render_template(parts, {"n": "<b>&</b>"})
    assert out == {
        "subject": "Hi <b>&</b>",
        "text": "Hi <b>&</b>",
        "html": "<p>&lt;b&gt;&amp;&lt;/b&gt; <b>&</b></p>",
    }


def test_a_missing_variable_is_an_error_naming_it() -> None:
    with pytest.raises(TemplateProblem) as e:
        render_template(TemplateParts("ok", "Dear {{ user.name }}"), {"user": {}})
    assert e.value.field == "text" and "name" in e.value.reason


def test_syntax_errors_name_the_line() -> None:
    with pytest.raises(TemplateProblem) as e:
        check_syntax("html", "<p>\n\n{% if x %}</p>")
    assert e.value.field == "html" and e.value.reason.startswith("line 3:")


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ x.__init__.__globals__ }}",
        "{{ items.append(1) }}",  # immutable sandbox: no mutation of the variables
        "{{ cycler.__init__.__globals__.os }}",
    ],
)
def test_the_sandbox_refuses_python_internals(source: str) -> None:
    with pytest.raises(TemplateProblem):
        render_template(TemplateParts("s", source), {"x": 1, "items": []})


def test_bounds_range_output_and_time() -> None:
    with pytest.raises(TemplateProblem, match="range"):
        loop = f"{{% for i in range({MAX_RANGE + 1}) %}}{{% endfor %}}"
        render_template(TemplateParts("s", loop), {})
    with pytest.raises(TemplateProblem, match="more than"):
        render_template(
            TemplateParts("s", "{% for i in range(9000) %}{{ big }}{% endfor %}"),
            {"big": "x" * 1000},
        )
    with pytest.raises(TemplateProblem, match="longer than"):
        render_template(
            TemplateParts("s", "{% for i in range(10) %}{{ i }}{% endfor %}"), {}, seconds=-1
        )


# -- attachments --------------------------------------------------------------------------------


def test_base64_sizes_are_known_before_decoding() -> None:
    for n in (0, 1, 2, 3, 4, 1000, 1001):
        raw = os.urandom(n)
        text = base64.encodebytes(raw).decode()  # with line breaks, as MIME writes it
        assert declared_size(text) == n
        assert decode_content(text, "a") == raw
    with pytest.raises(AttachmentError):
        decode_content("abc!", "attachments[0].content")


def test_files_are_read_inside_the_directory_only(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.txt").write_bytes(b"inside")
    (tmp_path / "outside.txt").write_bytes(b"outside")
    (root / "out-link").symlink_to(tmp_path / "outside.txt")
    (root / "in-link").symlink_to(root / "sub" / "a.txt")
    (root / "dir-link").symlink_to(tmp_path)
    assert read_file(str(root), "sub/a.txt", 100, "p") == b"inside"
    assert read_file(str(root), "./sub//a.txt", 100, "p") == b"inside"
    assert read_file(str(root), "in-link", 100, "p") == b"inside"  # a link that stays inside
    for path in ("../outside.txt", "sub/../../outside.txt", "out-link", "dir-link/outside.txt"):
        with pytest.raises(AttachmentError) as e:
            read_file(str(root), path, 100, "attachments[0].path")
        assert e.value.field == "attachments[0].path", path
    for path in ("/etc/passwd", "sub", "nope.txt", "", "a\x00b"):
        with pytest.raises(AttachmentError):
            read_file(str(root), path, 100, "p")
    with pytest.raises(AttachmentError, match="MAIL_MAX_ATTACHMENT_BYTES"):
        read_file(str(root), "sub/a.txt", 5, "p")


# -- the message ---------------------------------------------------------------------------------


def _parse(data: bytes) -> email.message.EmailMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    return msg


def _build(**kw: object) -> Outgoing:
    base: dict[str, object] = {
        "sender": parse_address("Jobs <jobs@example.com>"),
        "to": [parse_address("ann@example.com")],
        "subject": "s",
        "text": "t",
        "html": None,
    }
    base.update(kw)
    return build_message(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "html", "files", "shape"),
    [
        ("t", None, 0, "text/plain"),
        (None, "<p/>", 0, "text/html"),
        ("t", "<p/>", 0, "multipart/alternative"),
        ("t", "<p/>", 2, "multipart/mixed"),
        (None, "<p/>", 1, "multipart/mixed"),
    ],
)
def test_the_message_shape_follows_its_parts(
    text: str | None, html: str | None, files: int, shape: str
) -> None:
    attachments = [
        Attachment(f"f{i}.bin", "application/octet-stream", b"\x00" * i) for i in range(files)
    ]
    out = _build(text=text, html=html, attachments=attachments)
    msg = _parse(out.data)
    assert msg.get_content_type() == shape
    assert b"\r\n" in out.data and b"\n" not in out.data.replace(b"\r\n", b"")
    assert out.summary["size"] == len(out.data)


def test_bcc_goes_in_the_envelope_only() -> None:
    out = _build(
        cc=[parse_address("c@example.com")],
        bcc=[parse_address("Boss <boss@example.com>"), parse_address("ann@example.com")],
    )
    assert out.recipients == ("ann@example.com", "c@example.com", "boss@example.com")
    assert b"boss@example.com" not in out.data and b"Bcc" not in out.data


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        ({"From": "x@example.com"}, "headers.From"),
        ({"BCC": "x@example.com"}, "headers.BCC"),
        ({"Content-Transfer-Encoding": "8bit"}, "headers.Content-Transfer-Encoding"),
        ({"Message-ID": "<x@y>"}, "headers.Message-ID"),
        ({"X-Ok": "a\nBcc: spy@example.com"}, "headers.X-Ok"),
    ],
)
def test_structural_headers_and_line_breaks_are_refused(
    headers: dict[str, str], field: str
) -> None:
    with pytest.raises(MessageError) as e:
        _build(headers=headers)
    assert e.value.field == field


def test_non_ascii_goes_out_in_seven_bits() -> None:
    out = _build(
        to=[parse_address("José <jose@bücher.example>")],
        subject="Réunion",
        text="Grüße",
        html="<p>Grüße</p>",
    )
    assert out.data.isascii()
    assert out.recipients == ("jose@xn--bcher-kva.example",)
    msg = _parse(out.data)
    assert msg["Subject"] == "Réunion" and msg["To"].addresses[0].display_name == "José"
    bodies = [p.get_content() for p in msg.walk() if not p.is_multipart()]
    assert bodies == ["Grüße\n", "<p>Grüße</p>\n"]
    with pytest.raises(AddressError):
        parse_address("josé@example.com")  # a non-ASCII local part would need SMTPUTF8


# -- settings -----------------------------------------------------------------------------------


def test_the_smtp_password_is_in_no_repr_and_no_description() -> None:
    settings = Settings(
        smtp_host="smtp.example.com", smtp_password="hunter2-secret", smtp_username="u"
    )
    server = server_from_settings(settings)
    assert server is not None and server.password == "hunter2-secret"
    config = mail_config_from_settings(settings)
    for shown in (repr(settings), repr(server), str(server.describe()), str(config)):
        assert "hunter2-secret" not in shown
    assert server_from_settings(Settings()) is None
    swapped = server.with_login(host="relay.example.com", username="v", password="other-secret")
    assert (swapped.host, swapped.port, swapped.username) == ("relay.example.com", 587, "v")
