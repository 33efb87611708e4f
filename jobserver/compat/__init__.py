"""Compatibility routes: the documented requests of the reference job systems
(`shared/reference/*.md`), served as written and translated into calls of the `/v1` routes.

A system is one module here that declares `ROUTES_FOR(prefix) -> list[Route]` and answers in
its document's words. Its handlers never hold SQL nor a second copy of a behaviour: they turn
the request they got into the request of the `/v1` route that does the work
(`dispatch.call_v1`: the same scope, query and body checks, the same handler), and turn the
answer back. `registry.SYSTEMS` lists them with their default prefixes; `JOBSERVER_COMPAT`
(`spec.parse_compat`) says which are served, at which prefix.
"""
