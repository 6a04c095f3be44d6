"""The Docker registry token endpoint: GET (Basic credentials) and POST (OAuth2 password grant).

The token grants the intersection of what was asked for and what the account may do; asking for
more than allowed is not an error, the token simply carries less (as Distribution's clients expect).
"""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from portside.audit.recorder import AuditEvent
from portside.auth.principal import ANONYMOUS, Principal
from portside.clientinfo import client_ip
from portside.errors import TooManyRequests, Unauthorized, Unsupported
from portside.registry.authz import claimed_user
from portside.services import Services


def _error(status: int, code: str, message: str) -> Response:
    return JSONResponse({"errors": [{"code": code, "message": message}]}, status_code=status)


async def token(request: Request) -> Response:
    services: Services = request.app.state.services
    if services.tokens is None:
        return _error(404, "UNSUPPORTED", "this registry runs without authentication; no token is needed")
    service = request.query_params.get("service")
    scopes = request.query_params.getlist("scope")
    username = password = None
    if request.method == "POST":
        form = await request.form()
        grant_type = str(form.get("grant_type", ""))
        if grant_type != "password":
            return _error(400, "UNSUPPORTED", "only grant_type=password is supported; or use GET with Basic auth")
        username, password = str(form.get("username", "")), str(form.get("password", ""))
        service = str(form.get("service", service or ""))
        scopes = [str(s) for s in form.getlist("scope")] or scopes
    if service and service != services.settings.auth.service:
        return _error(400, "UNSUPPORTED",
                      f"this token service is {services.settings.auth.service!r}, not {service!r}")
    ip = client_ip(request)
    try:
        if username is not None:
            principal: Principal = await services.access.login(username, password or "", ip)
        else:
            principal, claims = await services.access.identify(request.headers.get("authorization"), ip)
            if claims is not None:
                raise Unsupported("present Basic credentials (or none) to get a token, not a bearer token")
    except Unauthorized as exc:
        services.audit.record(AuditEvent("login", "login", "token", username or claimed_user(request),
                                         client_ip=ip, success=False, detail=exc.message))
        return _error(401, "UNAUTHORIZED", exc.message)
    except Unsupported as exc:
        return _error(400, "UNSUPPORTED", exc.message)
    except TooManyRequests as exc:
        response = _error(429, "TOOMANYREQUESTS", exc.message)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if principal is not ANONYMOUS:
        services.audit.record(AuditEvent("login", "login", "token", principal.name, client_ip=ip))
    access = await services.access.grant(principal, [s for scope in scopes for s in scope.split(" ")])
    # Anonymous tokens name no subject: "anonymous" could be a real user's name.
    jwt, issued, ttl = services.tokens.issue("" if principal is ANONYMOUS else principal.name, access)
    return JSONResponse({
        "token": jwt, "access_token": jwt, "expires_in": ttl,
        "issued_at": datetime.fromtimestamp(issued, UTC).isoformat().replace("+00:00", "Z"),
    })
