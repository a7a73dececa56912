"""The ops dashboard at ``/dashboard``: live calls, their transcripts and events, hang-up and
transfer buttons, recent ended calls. Plain HTML/JS/CSS from :mod:`bridge.static` (no build
step, nothing from a CDN) fed by two server-sent-event streams (:mod:`bridge.dashboard.routes`);
login by the server key in a form, kept as an HMAC cookie (:mod:`bridge.control.auth`)."""

from bridge.dashboard.routes import router

__all__ = ["router"]
