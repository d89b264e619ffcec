"""The bound on one SubmitAppWrappers stream: items, messages and bytes.

Items alone left a stream of empty messages unbounded (500,000 of them took a hub from 101 to 610 MiB). Every
message now counts, empty or not, and so do its bytes; past any limit the stream ends with RESOURCE_EXHAUSTED
and nothing from it is acknowledged (what was already stored stays, and a retry with the same ids or request
ids is answered as such).
"""

from __future__ import annotations

from dataclasses import dataclass

from caspian.v1 import hub_pb2
from services.common.errors import ResourceExhausted


@dataclass
class StreamBound:
    max_items: int
    max_messages: int
    max_bytes: int
    items: int = 0
    messages: int = 0
    bytes: int = 0

    @classmethod
    def from_settings(cls, settings) -> StreamBound:
        return cls(settings.bulk_max_items, settings.bulk_max_messages, settings.bulk_max_bytes)

    def count(self, request: hub_pb2.SubmitAppWrappersRequest) -> None:
        """Count one message of the stream; ResourceExhausted once a limit is passed."""
        self.messages += 1
        if self.messages > self.max_messages:
            raise ResourceExhausted(
                f"one stream carries at most {self.max_messages} messages, empty ones included "
                "(CASPIAN_HUB_BULK_MAX_MESSAGES); put more items in each message or open another stream"
            )
        self.items += len(request.items)
        if self.items > self.max_items:
            raise ResourceExhausted(f"one stream carries at most {self.max_items} AppWrappers", field="items")
        self.bytes += request.ByteSize()
        if self.bytes > self.max_bytes:
            raise ResourceExhausted(
                f"one stream carries at most {self.max_bytes} bytes (CASPIAN_HUB_BULK_MAX_BYTES); "
                "open another stream"
            )
