"""The web dashboard at `/ui`: static files shipped in the package, served by the API.

The dashboard is a client of the `/v1` API and nothing else: the browser signs in with a token
(kept in `sessionStorage`), and every figure and action is a `/v1` call with it. The files here
hold no data, so `/ui` needs no token; every answer under `/ui` carries a strict
Content-Security-Policy (`CSP`: scripts, styles and connections from this origin only, no
inline script or style), `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`.

Front end, and why: Preact with hooks and `htm` tagged templates, as the single ES module
`htm/preact/standalone.module.js` (13 KB, components without JSX, so no build step at install
and no bundler in the repository), and uPlot for the throughput charts (small, canvas-based,
no dependencies, an ES module build). htmx was the other candidate: it fits server-rendered
HTML, but this dashboard renders JSON from the public API and keeps live state (the event
stream), which components do more plainly. Both files are vendored unchanged from their npm
packages: see `static/vendor/VENDORED.md` for versions, licences and hashes. Our own JS is
one module per page under `static/js/pages/`, with `api.js` (fetch, token, errors) and
`stream.js` (the `/v1/stream` reader).

Routes: `GET /ui` and `/ui/` answer `index.html`; `GET /ui/<path>` a file under `static/`
(404 JSON `{"error","code"}` for anything else, including paths that leave the directory).
Files are revalidated on each load (`Cache-Control: no-cache` with ETag/Last-Modified).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).resolve().parent / "static"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


def _secured(response: web.StreamResponse) -> web.StreamResponse:
    response.headers.update(SECURITY_HEADERS)
    return response


def _not_found() -> web.StreamResponse:
    return _secured(web.json_response({"error": "no such file", "code": "not_found"}, status=404))


def resolve(rel: str) -> Path | None:
    """The file under STATIC that `rel` names, or None (missing, a directory, outside it)."""
    if not rel:
        rel = "index.html"
    if "\x00" in rel or "\\" in rel:
        return None
    try:
        path = (STATIC / rel).resolve()
    except (OSError, ValueError):
        return None
    if not path.is_relative_to(STATIC) or not path.is_file():
        return None
    if path.suffix not in CONTENT_TYPES:
        return None
    return path


async def serve(request: web.Request) -> web.StreamResponse:
    """One static file of the dashboard, with the security headers."""
    path = resolve(request.match_info.get("path", ""))
    if path is None:
        return _not_found()
    response = web.FileResponse(
        path,
        headers={"Content-Type": CONTENT_TYPES[path.suffix], "Cache-Control": "no-cache"},
    )
    return _secured(response)


def add_routes(app: web.Application) -> None:
    """Register `/ui`, `/ui/` and `/ui/<path>` (GET and HEAD) on `app`."""
    app.router.add_get("/ui", serve)
    app.router.add_get("/ui/{path:.*}", serve)
