"""A page of a listing; its resume token is signed and bound to its filters (pagetoken.py)."""

from __future__ import annotations

from dataclasses import dataclass

from caspian.v1 import common_pb2


@dataclass(frozen=True)
class Page:
    items: list[common_pb2.AppWrapper]
    next_page_token: str
    total: int
