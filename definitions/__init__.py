"""The job definitions shipped with jobserver, one module each, installed as
`jobserver.definitions` (see pyproject.toml); `registry.load_modules` imports every module here."""
