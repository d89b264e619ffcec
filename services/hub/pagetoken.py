"""ListAppWrappers page tokens: opaque, signed, and refused with INVALID_ARGUMENT in every malformed form.

A token is base64url of 8 bytes of position (the sequence number the next page starts after), 8 bytes naming
the filters it was issued for, and a 16-byte HMAC-SHA256 over both. The filter name is keyed too, so no one can
compute it; the key comes from a file (the same on every replica and across restarts) or is random per
process, when a token simply stops working at a restart. Nothing in a token is parsed before its MAC checks.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import struct
from collections.abc import Sequence

from services.common.errors import InvalidArgument

_POSITION = struct.Struct(">Q")
_FILTER_BYTES = 8
_MAC_BYTES = 16
_TOKEN_BYTES = _POSITION.size + _FILTER_BYTES + _MAC_BYTES
MAX_POSITION = (1 << 63) - 1  # SQLite's INTEGER
_FOREIGN = "not a page token this hub issued (tokens are opaque; pass next_page_token back unchanged)"


class PageTokens:
    def __init__(self, key: bytes):
        if len(key) < 16:
            raise ValueError("a page token key needs at least 16 bytes")
        self._key = key

    @classmethod
    def from_settings(cls, settings) -> PageTokens:
        path = getattr(settings, "page_token_key_file", "")
        if not path:
            return cls(os.urandom(32))
        with open(path, "rb") as handle:
            key = handle.read().strip()
        return cls(key)

    def _filters(self, phases: Sequence[int], cluster: str, tenant: str) -> bytes:
        raw = json.dumps([sorted(set(phases)), cluster, tenant]).encode()
        return hmac.new(self._key, b"filters\x00" + raw, hashlib.sha256).digest()[:_FILTER_BYTES]

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, b"page\x00" + body, hashlib.sha256).digest()[:_MAC_BYTES]

    def encode(self, position: int, phases: Sequence[int], cluster: str, tenant: str) -> str:
        body = _POSITION.pack(position) + self._filters(phases, cluster, tenant)
        return base64.urlsafe_b64encode(body + self._mac(body)).decode().rstrip("=")

    def decode(self, token: str, phases: Sequence[int], cluster: str, tenant: str) -> int:
        """The position a token continues from; InvalidArgument(page_token) for anything else."""
        if len(token) > 64:
            raise InvalidArgument(_FOREIGN, field="page_token")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise InvalidArgument(_FOREIGN, field="page_token") from None
        if len(raw) != _TOKEN_BYTES:
            raise InvalidArgument(_FOREIGN, field="page_token")
        body, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if not hmac.compare_digest(mac, self._mac(body)):
            raise InvalidArgument(_FOREIGN, field="page_token")
        (position,) = _POSITION.unpack(body[: _POSITION.size])
        if not hmac.compare_digest(body[_POSITION.size :], self._filters(phases, cluster, tenant)):
            raise InvalidArgument("the page token belongs to a list with other filters", field="page_token")
        if position > MAX_POSITION:
            raise InvalidArgument(_FOREIGN, field="page_token")
        return position
