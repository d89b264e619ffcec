"""Quarantine: an AppWrapper row whose stored record no longer decodes is moved aside, reported, and skipped.

One damaged row used to make every scheduling cycle fail and List, Get and Watch answer INTERNAL. Now the
store decodes rows one by one: a row that does not decode is moved, in its own write, from `appwrappers` to
`quarantine` (with the decoder's error and the time), each listener hears of it (the hub logs it and counts
`caspian_hub_quarantined_records_total`), and the read goes on without it. Its id stays taken: Get of it, or
a submission reusing it, answers DATA_LOSS naming the id (to its own tenant; another tenant's Get is
NOT_FOUND, as for any AppWrapper it may not see). An operator finds the rows with
`SELECT id, tenant, phase, error, quarantined_at FROM quarantine` and may delete them once dealt with.

The move re-reads the row in the write transaction and re-checks it, so a row rewritten meanwhile stays.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from google.protobuf.message import DecodeError

from caspian.v1 import common_pb2
from services.common.errors import DataLoss

log = logging.getLogger("caspian.hub.store")

QuarantineListener = Callable[[str, str], None]  # (AppWrapper id, decoder error)
T = TypeVar("T")


class Quarantined(DataLoss):
    """The AppWrapper's stored record cannot be decoded and was set aside; its id stays taken."""

    def __init__(self, app_wrapper_id: str, error: str, tenant: str = ""):
        super().__init__(
            f"AppWrapper {app_wrapper_id[:64]!r} is quarantined: its stored record cannot be decoded "
            f"({error[:80]}); the hub's database is damaged (see the hub's log); use a new id"
        )
        self.app_wrapper_id = app_wrapper_id
        # The row's tenant: another tenant is answered NOT_FOUND, as for any id it cannot see.
        self.tenant = tenant


def decodes(body: bytes) -> bool:
    try:
        common_pb2.AppWrapper.FromString(body)
    except DecodeError:
        return False
    return True


def decode_each(
    rows: Iterable[Sequence[Any]], decode: Callable[[Sequence[Any]], T], id_at: int = 0
) -> tuple[list[T], list[tuple[str, str]]]:
    """Decode every row alone: (the values that decoded, (id, error) of each row that did not)."""
    good: list[T] = []
    bad: list[tuple[str, str]] = []
    for row in rows:
        try:
            good.append(decode(row))
        except DecodeError as exc:
            bad.append((str(row[id_at]), str(exc) or type(exc).__name__))
    return good, bad


def report(listeners: Sequence[QuarantineListener], moved: Sequence[tuple[str, str]]) -> None:
    for app_wrapper_id, error in moved:
        log.error(
            "AppWrapper record quarantined: it cannot be decoded",
            extra={"app_wrapper_id": app_wrapper_id, "error": error[:200]},
        )
        for listener in listeners:
            try:
                listener(app_wrapper_id, error)
            except Exception:  # noqa: BLE001 - reporting must not stop the store
                log.exception("quarantine listener failed")


QUARANTINE_COLUMNS = "id, seq, tenant, phase, body, error, quarantined_at"
SELECT_FOR_MOVE = "SELECT seq, tenant, phase, body FROM appwrappers WHERE id = ?"
