"""Who is calling, and whether a form post came from our own page.

The caller's hub token comes from the `Authorization: Bearer` header or from the HttpOnly cookie the sign-in
form sets; the console passes it to the hub unchanged and never stores it. A form post must come from the
same origin (Origin, else Referer) and carry a CSRF token bound to the caller's hub token by an HMAC.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from aiohttp import web

COOKIE = "caspian_token"
MAX_TOKEN_CHARS = 4096


def caller_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[len("Bearer ") :].strip()
    return request.cookies.get(COOKIE, "").strip()


class CsrfGuard:
    def __init__(self, key: bytes | None = None):
        self.key = key or secrets.token_bytes(32)

    def token_for(self, caller: str) -> str:
        return hmac.new(self.key, b"csrf\0" + caller.encode(), hashlib.sha256).hexdigest()

    def check(self, request: web.Request, form_token: str, caller: str) -> str | None:
        """None when the post is ours; otherwise why it is refused."""
        origin = request.headers.get("Origin") or _origin_of(request.headers.get("Referer", ""))
        if not origin or origin == "null":
            return "the form post names no origin"
        if origin != f"{request.scheme}://{request.host}":
            return f"the form post came from another origin ({origin})"
        if not hmac.compare_digest(form_token or "", self.token_for(caller)):
            return "the form's CSRF token does not match; reload the page"
        return None


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def read_key(path: str) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as fh:
        key = fh.read().strip()
    if len(key) < 16:
        raise ValueError(f"{path}: the CSRF key must be at least 16 bytes")
    return key
