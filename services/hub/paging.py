"""List pages: the token that resumes a listing, bound to the filters it was issued for."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from caspian.v1 import common_pb2
from services.common.errors import InvalidArgument


@dataclass(frozen=True)
class Page:
    items: list[common_pb2.AppWrapper]
    next_page_token: str
    total: int


def filter_key(phases: Sequence[int], cluster: str, tenant: str) -> str:
    raw = json.dumps([sorted(set(phases)), cluster, tenant])
    return hashlib.sha256(raw.encode()).hexdigest()[:12]


def encode_token(after_seq: int, key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"a": after_seq, "f": key}).encode()).decode().rstrip("=")


def decode_token(token: str, key: str) -> int:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        after, filters = int(data["a"]), str(data["f"])
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument("not a page token this hub issued", field="page_token") from None
    if filters != key or after < 0:
        raise InvalidArgument("the page token belongs to a list with other filters", field="page_token")
    return after
