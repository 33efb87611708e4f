"""Alembic migrations, installed as `jobserver.migrations` (see pyproject.toml); the directory is
found from this package, so an installed jobserver migrates without the repository."""
