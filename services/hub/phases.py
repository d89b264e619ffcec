"""AppWrapper phases by short name, shared by the hub's modules."""

from caspian.v1 import common_pb2

Phase = common_pb2.AppWrapperPhase
PENDING = Phase.APP_WRAPPER_PHASE_PENDING
SCHEDULED = Phase.APP_WRAPPER_PHASE_SCHEDULED
DISPATCHING = Phase.APP_WRAPPER_PHASE_DISPATCHING
RUNNING = Phase.APP_WRAPPER_PHASE_RUNNING
SUCCEEDED = Phase.APP_WRAPPER_PHASE_SUCCEEDED
FAILED = Phase.APP_WRAPPER_PHASE_FAILED
CANCELLED = Phase.APP_WRAPPER_PHASE_CANCELLED
UNSCHEDULABLE = Phase.APP_WRAPPER_PHASE_UNSCHEDULABLE
# An interruptible job paused between two segments: its Job is suspended on the target cluster.
SUSPENDED = Phase.APP_WRAPPER_PHASE_SUSPENDED

# Named sets, so that queries and checks say what they mean instead of listing numbers.
# Waiting for a cycle, placed, being dispatched, running on a spoke, or paused between segments: the
# scheduling loop's working set.
ACTIVE = (PENDING, SCHEDULED, DISPATCHING, RUNNING, SUSPENDED)
# Past the gate, or paused between segments: a gate pass reads these whatever their planned start (with the
# Scheduled jobs whose start has come; store.gate_app_wrappers).
PAST_GATE = (DISPATCHING, RUNNING, SUSPENDED)
# Finished for good: no transition leaves these, and after a TTL they are collected.
TERMINAL = (SUCCEEDED, FAILED, CANCELLED, UNSCHEDULABLE)
# Never ran (or never will), so their planned carbon does not count in the totals.
WITHOUT_PLANNED_CARBON = (CANCELLED, UNSCHEDULABLE)
