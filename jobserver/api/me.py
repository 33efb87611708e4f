"""`GET /v1/me`: what the calling token may do, so a client (the dashboard) shows only the
actions the API would accept. Any valid token may ask; it answers from the authenticated
principal alone (no database read beyond the token lookup)."""

from __future__ import annotations

from aiohttp import web

from jobserver.api.jsonio import json_response
from jobserver.api.keys import PRINCIPAL_KEY, SETTINGS_KEY


async def whoami(request: web.Request) -> web.Response:
    p = request[PRINCIPAL_KEY]
    return json_response(
        {
            "owner": p.owner,
            "tokenName": p.token_name,
            "scopes": sorted(p.scopes),
            "canViewAll": p.can_view_all,
            "canManage": p.can_manage,
            "canCallOut": p.can_call_out,
            "authEnabled": request.app[SETTINGS_KEY].auth_enabled,
        }
    )
