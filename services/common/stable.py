"""Stable choices: the same key always picks the same item, and many keys spread evenly over the items.

Used where a carbon-agnostic choice has no reason to prefer one option: a job's default home, and the
cluster among equally loaded ones. Taking the first by name instead would favour one cluster for its name
(carbon-cn, the dirtiest of the default spokes, sorts first). A real scheduler breaks such ties at random
(kube-scheduler picks at random among nodes of equal score); a hash of the job id does the same, but the
same way every run.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping


def stable_index(key: str, n: int) -> int:
    """An index in [0, n) fixed by `key` (CRC-32 of its UTF-8 bytes, unlike hash() the same in every process)."""
    if n <= 0:
        raise ValueError(f"no items to choose from (n={n})")
    return zlib.crc32(key.encode()) % n


def stable_min(key: str, scores: Mapping[str, float]) -> str:
    """The name with the lowest score; among names tied for it, the one `key` picks (in name order)."""
    least = min(scores.values())
    tied = sorted(name for name, score in scores.items() if score <= least + 1e-12)
    return tied[stable_index(key, len(tied))]
