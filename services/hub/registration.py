"""What RegisterCluster and UpdateCluster check against the other services before a cluster is kept.

- The zone against the carbon service: a zone it answers NOT_FOUND (or INVALID_ARGUMENT) for is refused,
  INVALID_ARGUMENT on `cluster.zone` with the service's own words (they list the known zones). When the carbon
  service does not answer the zone cannot be checked: the cluster is kept and a warning logged; if the zone
  proves unknown, cycles plan its clusters at the other zones' mean intensity and say so in their notes, so
  the rest of the fleet stays carbon-aware.
- The kube context against the dispatcher: the new cluster is probed at once (ClusterRegistry.probe), so a
  context the dispatcher does not know is flagged in the answer itself (ready false, `not_ready_reason`
  naming the refusal) and in `caspianctl clusters`, and no other cluster's probe is affected.
"""

from __future__ import annotations

import logging
from datetime import datetime

from services.common.errors import InvalidArgument
from services.hub.grid import Grid
from services.hub.ports import CarbonPort, Refused

log = logging.getLogger("caspian.hub.clusters")


async def check_zone(carbon: CarbonPort, zone: str, now: datetime, slot_seconds: int, field: str) -> None:
    grid = Grid.at(now, slot_seconds, 1)
    try:
        await carbon.forecast(zone, grid.start, grid.slot_seconds, 1)
    except Refused as exc:
        raise InvalidArgument(
            f"the carbon service does not know zone {zone!r} ({exc})", field=field
        ) from None
    except Exception as exc:  # noqa: BLE001 - the carbon service is down: keep the cluster, unchecked
        log.warning(
            "zone not checked: the carbon service did not answer",
            extra={"zone": zone, "error": str(exc)[:200]},
        )
