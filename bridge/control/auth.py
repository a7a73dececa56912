"""Who may use the control plane: the server key, as ``Authorization: Bearer`` or a login cookie.

Every control-plane route depends on :func:`require_key` except ``/healthz``, ``/readyz``,
``/metrics``, ``/docs`` and ``/openapi.json``. Keys never travel in URLs (access logs record
URLs). Browsers (the ops dashboard) log in once with the key and then carry a cookie instead:
its value is an HMAC of the server key, not the key, so a leaked cookie reveals nothing and
dies with the key (rotating the key logs everyone out). The cookie is ``HttpOnly`` (scripts
cannot read it) and ``SameSite=Strict`` (other sites cannot make a browser send it, which is
what makes cookie auth safe against cross-site request forgery here).
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import HTTPException, Request, Response

from bridge.apikeys import ServerKey, key_from_request

__all__ = [
    "COOKIE_NAME",
    "clear_login_cookie",
    "is_authorized",
    "login_cookie_value",
    "require_key",
    "set_login_cookie",
    "verify_login_cookie",
]

COOKIE_NAME = "rtbridge_session"
_COOKIE_CONTEXT = b"rtbridge dashboard login v1"


def login_cookie_value(key: ServerKey) -> str:
    """The cookie a logged-in browser carries: HMAC-SHA256 of a fixed context under the key."""
    return hmac.new(key.value.encode(), _COOKIE_CONTEXT, hashlib.sha256).hexdigest()


def verify_login_cookie(key: ServerKey, value: str | None) -> bool:
    if not value:
        return False
    return hmac.compare_digest(value.encode(), login_cookie_value(key).encode())


def set_login_cookie(
    response: Response, key: ServerKey, *, secure: bool = False, max_age_s: int = 12 * 3600
) -> None:
    """Log a browser in (call after checking the key it typed with ``key.matches``)."""
    response.set_cookie(
        COOKIE_NAME,
        login_cookie_value(key),
        max_age=max_age_s,
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
    )


def clear_login_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")


def _unauthorized(message: str, code: str) -> HTTPException:
    return HTTPException(
        status_code=401,
        detail={"message": message, "type": "invalid_request_error", "code": code},
        headers={"WWW-Authenticate": "Bearer"},
    )


def is_authorized(request: Request) -> bool:
    """Whether a request carries the key or a login cookie (for pages that redirect to a login
    form instead of answering 401)."""
    key: ServerKey = request.app.state.server_key
    if key.matches(key_from_request(request.headers)):
        return True
    return verify_login_cookie(key, request.cookies.get(COOKIE_NAME))


async def require_key(request: Request) -> None:
    """FastAPI dependency: the server key as a Bearer token, or a valid login cookie; else 401."""
    key: ServerKey = request.app.state.server_key
    token = key_from_request(request.headers)
    if token is not None:
        if key.matches(token):
            return
        raise _unauthorized("Incorrect API key provided.", "invalid_api_key")
    if verify_login_cookie(key, request.cookies.get(COOKIE_NAME)):
        return
    raise _unauthorized(
        "Missing API key: send 'Authorization: Bearer <key>' (or log in to the dashboard).",
        "missing_api_key",
    )
