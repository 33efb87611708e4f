"""The one error the renderer raises, shaped for a 422 answer or a failed attempt's message."""

from __future__ import annotations


class TemplateError(ValueError):
    """A template that cannot be rendered: bad syntax, a missing path, an unknown macro or a
    bound passed. `placeholder` is the placeholder's text (`{{user.email}}`, or "" when the
    error is not about one), `location` the JSON path of the string it sits in
    (`payload.items[2].name`, "" for the top level); both are also in the message."""

    code = "template_error"

    def __init__(self, placeholder: str, message: str, location: str = "") -> None:
        self.placeholder = placeholder
        self.location = location
        self.reason = message
        where = f"at {location}" if location else "at the top level"
        what = f"{placeholder} {where}" if placeholder else where
        super().__init__(f"{self.code}: {what}: {message}")
