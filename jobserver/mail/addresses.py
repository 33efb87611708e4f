"""Mail addresses as jobs give them: `jane@example.com` or `Jane Doe <jane@example.com>`,
alone or in a list, each one address.

The display name and the address are split by the standard library's RFC 5322 header parser
(`email.headerregistry`), and the address itself is checked by `email-validator` with its
deliverability checks off (no DNS lookup at submission or at run time). A value holding CR, LF
or NUL, a group, several addresses in one string, or a parser defect is refused. The address
itself must be ASCII (an internationalized domain is sent in its IDNA form; a non-ASCII local
part would need the SMTPUTF8 extension, which few relays offer, and is refused); display
names may hold any text (encoded per RFC 2047).

- `parse_address(text)`: one `MailAddress` or `AddressError` saying why;
- `address_list(value)`: a string or a list of strings as a list of texts (None: `[]`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_ADDRESS_CHARS = 998  # the longest line RFC 5322 allows
MAX_RECIPIENTS = 100  # to, cc and bcc of one mail together


class AddressError(ValueError):
    """Not one valid mail address; the message says why."""


@dataclass(frozen=True)
class MailAddress:
    display_name: str
    addr_spec: str  # local@domain in ASCII, normalized by email-validator (domain lower-cased)

    def header(self) -> Any:
        """As an `email.headerregistry.Address`, for a message header."""
        from email.headerregistry import Address

        return Address(display_name=self.display_name, addr_spec=self.addr_spec)

    def __str__(self) -> str:
        return str(self.header())


def parse_address(text: str) -> MailAddress:
    """One address, with or without a display name (see the module docstring)."""
    from email.policy import default as policy

    from email_validator import EmailNotValidError, validate_email

    if not isinstance(text, str) or not text.strip():
        raise AddressError("an address must be a non-empty string")
    if len(text) > MAX_ADDRESS_CHARS:
        raise AddressError(f"longer than {MAX_ADDRESS_CHARS} characters")
    if any(c in text for c in "\r\n\x00"):
        raise AddressError("holds CR, LF or NUL")
    try:
        header = policy.header_factory("To", text)
        groups = header.groups
        defects = header.defects
    except Exception:  # the parser raises on some malformed input instead of noting a defect
        raise AddressError(f"{text!r} is not a mail address") from None
    if defects:
        raise AddressError(f"{text!r} is not a mail address ({defects[0]})")
    if len(groups) != 1 or groups[0].display_name is not None or len(groups[0].addresses) != 1:
        raise AddressError(f"{text!r} must be exactly one address (no list, no group)")
    found = groups[0].addresses[0]
    try:
        valid = validate_email(found.addr_spec, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as e:
        raise AddressError(f"{found.addr_spec!r}: {e}") from None
    return MailAddress(found.display_name, valid.ascii_email or valid.normalized)


def address_list(value: Any) -> list[Any]:
    """A params value that holds one address or a list of them, as a list (None: empty)."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]
