"""The dashboard's files: what `/ui/<path>` may serve, and that what ships keeps the CSP's
promises (no inline script or style, every vendored file listed with its licence)."""

from __future__ import annotations

import re

from jobserver.ui import STATIC, resolve


def test_resolve_serves_files_under_static_only() -> None:
    assert resolve("") == STATIC / "index.html"
    assert resolve("js/app.js") == STATIC / "js" / "app.js"
    for bad in ("../__init__.py", "js/../../__init__.py", "js", "nope.js", "a\x00b", "js\\app.js"):
        assert resolve(bad) is None, bad
    assert resolve("/etc/passwd") is None


def test_html_has_no_inline_script_or_style() -> None:
    for page in STATIC.rglob("*.html"):
        text = page.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), page
        assert "style=" not in text and "<style" not in text, page
        assert not re.search(r"\son[a-z]+=", text), page  # no inline event handlers


def test_our_modules_are_readable_and_vendored_files_are_listed() -> None:
    listing = (STATIC / "vendor" / "VENDORED.md").read_text()
    for f in (STATIC / "vendor").iterdir():
        if f.suffix in (".js", ".css"):
            assert f"`{f.name}`" in listing, f.name
        if f.name.startswith("LICENSE"):
            assert f.name in listing
    pages = {p.stem for p in (STATIC / "js" / "pages").glob("*.js")}
    assert {"overview", "jobs", "job", "dlq", "queues", "runners", "videos"} <= pages
    for js in (STATIC / "js").rglob("*.js"):
        longest = max(len(line) for line in js.read_text().splitlines())
        assert longest < 200, f"{js.name}: a {longest}-character line (no minified code)"


def test_index_preloads_every_module() -> None:
    """All modules are fetched at once (modulepreload), not one import level at a time."""
    index = (STATIC / "index.html").read_text()
    preloaded = set(re.findall(r'<link rel="modulepreload" href="/ui/([^"]+)">', index))
    ours = {p.relative_to(STATIC).as_posix() for p in (STATIC / "js").rglob("*.js")}
    assert ours <= preloaded, ours - preloaded
    assert all((STATIC / p).is_file() for p in preloaded)
