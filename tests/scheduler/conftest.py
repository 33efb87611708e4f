"""The API fixtures (real app, tokens per scope) shared with the API tests."""

from tests.api.conftest import Api, api  # noqa: F401
