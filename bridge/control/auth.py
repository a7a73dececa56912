"""Who may use the control plane: the server key as ``Authorization: Bearer``, or a login session.

Every control-plane route depends on :func:`require_key` except ``/healthz``, ``/readyz``,
``/metrics`` (keyed when ``server.metrics_auth = "key"``) and ``/openapi.json``. Keys never
travel in URLs (access logs record URLs).

Browsers (the ops dashboard) log in once with the key and then carry a session cookie: a random
token per login (:mod:`bridge.control.sessions`) that expires, dies on logout, and reveals
nothing about the key. The cookie is ``HttpOnly`` (scripts cannot read it) and
``SameSite=Strict``. SameSite alone does not stop another origin of the same site (another port
on the same host is same-site), so every state-changing request that a cookie authorises must
also carry an ``Origin`` header naming this server (or one of ``server.allowed_origins``);
anything else is refused 403 and recorded as an ``origin-refused`` security event. Requests
with a Bearer key are not driven by a browser's ambient credentials and need no Origin.

Wrong keys and expired or revoked session cookies are ``auth-failure`` security events.
"""

from __future__ import annotations

from fastapi import HTTPException, Request, Response

from bridge.apikeys import ServerKey, key_from_request
from bridge.control.sessions import LoginSessions
from bridge.security import SecurityKind, SecurityLog

__all__ = [
    "COOKIE_NAME",
    "is_authorized",
    "log_in",
    "log_out",
    "origin_allowed",
    "record",
    "require_key",
    "source_of",
]

COOKIE_NAME = "rtbridge_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def source_of(request: Request) -> str:
    return f"http:{request.client.host if request.client else 'unknown'}"


def record(request: Request, kind: SecurityKind, detail: str) -> None:
    """A security event about this request (its client address is the source)."""
    security: SecurityLog | None = getattr(request.app.state, "security", None)
    if security is not None:
        security.record(kind, source=source_of(request), detail=detail)


def _sessions(request: Request) -> LoginSessions:
    sessions = request.app.state.sessions
    assert isinstance(sessions, LoginSessions)
    return sessions


def _netloc(netloc: str, scheme: str) -> str:
    host, sep, port = netloc.rpartition(":")
    if sep and not host.endswith("]") and "]" in port:  # a bare IPv6 reference, no port
        return netloc
    if sep and port == _DEFAULT_PORTS.get(scheme):
        return host
    return netloc


def origin_allowed(request: Request) -> bool:
    """Whether the request's ``Origin`` is this server (the ``Host`` it was sent to) or one of
    ``server.allowed_origins``. No Origin, or ``null``, is not allowed."""
    origin = request.headers.get("origin", "").strip().lower()
    if not origin or origin == "null":
        return False
    allowed: list[str] = request.app.state.settings.server.allowed_origins
    if origin in allowed:
        return True
    scheme, sep, netloc = origin.partition("://")
    if not sep or scheme not in _DEFAULT_PORTS or not netloc or "/" in netloc:
        return False
    host = request.headers.get("host", "").strip().lower()
    return bool(host) and _netloc(netloc, scheme) == _netloc(host, scheme)


def log_in(request: Request, response: Response) -> None:
    """Start a session for a browser that typed the key (check it with ``key.matches``)."""
    sessions = _sessions(request)
    response.set_cookie(
        COOKIE_NAME,
        sessions.create(),
        max_age=int(sessions.ttl_s),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


def log_out(request: Request, response: Response) -> None:
    """End the browser's session (the cookie stops working at once) and clear the cookie."""
    _sessions(request).revoke(request.cookies.get(COOKIE_NAME))
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")


def _unauthorized(message: str, code: str) -> HTTPException:
    return HTTPException(
        status_code=401,
        detail={"message": message, "type": "invalid_request_error", "code": code},
        headers={"WWW-Authenticate": "Bearer"},
    )


def _cross_origin() -> HTTPException:
    return HTTPException(
        status_code=403,
        detail={
            "message": "Cross-origin request refused: a request authorised by the login cookie "
            "must come from this server's own pages (Origin).",
            "type": "invalid_request_error",
            "code": "origin_not_allowed",
        },
    )


def is_authorized(request: Request) -> bool:
    """Whether a request carries the key or a live session (for pages that show a login form
    instead of answering 401; read-only requests, so no Origin is needed)."""
    key: ServerKey = request.app.state.server_key
    token = key_from_request(request.headers)
    if token is not None:
        if key.matches(token):
            return True
        record(request, SecurityKind.AUTH_FAILURE, f"wrong key on {request.url.path}")
        return False
    return _session_ok(request)


def _session_ok(request: Request) -> bool:
    cookie = request.cookies.get(COOKIE_NAME)
    if cookie is None:
        return False
    if _sessions(request).valid(cookie):
        return True
    record(
        request,
        SecurityKind.AUTH_FAILURE,
        f"expired or revoked dashboard session on {request.url.path}",
    )
    return False


async def require_key(request: Request) -> None:
    """FastAPI dependency: the server key as a Bearer token, or a live session (plus a matching
    Origin for anything but GET/HEAD/OPTIONS); else 401 (403 for a cross-origin request)."""
    key: ServerKey = request.app.state.server_key
    token = key_from_request(request.headers)
    if token is not None:
        if key.matches(token):
            return
        record(request, SecurityKind.AUTH_FAILURE, f"wrong key on {request.url.path}")
        raise _unauthorized("Incorrect API key provided.", "invalid_api_key")
    if _session_ok(request):
        if request.method in SAFE_METHODS or origin_allowed(request):
            return
        origin = request.headers.get("origin") or "none"
        record(
            request,
            SecurityKind.ORIGIN_REFUSED,
            f"{request.method} {request.url.path} with the login cookie from Origin {origin}",
        )
        raise _cross_origin()
    raise _unauthorized(
        "Missing API key: send 'Authorization: Bearer <key>' (or log in to the dashboard).",
        "missing_api_key",
    )
