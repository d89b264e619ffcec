"""Dispatcher gRPC servicer: maps protobuf to the domain and back, nothing more."""

from __future__ import annotations

from kubernetes.config import ConfigException
from prometheus_client import CollectorRegistry

from caspian.v1 import common_pb2, dispatcher_pb2, dispatcher_pb2_grpc
from services.common.clock import Clock, clock_from_settings, load_clock_settings
from services.common.server import GrpcServer
from services.common.settings import SettingsError
from services.common.timeconv import duration_seconds, from_timestamp, to_timestamp
from services.dispatcher.capacity import Resources
from services.dispatcher.client import SpokeClient, Timeouts
from services.dispatcher.dispatch import ClusterProbe, Dispatcher
from services.dispatcher.events import Bookmark, ClusterEvent, JobEvent
from services.dispatcher.kubeconfig import load_spoke_configs
from services.dispatcher.manifests import JobRequest, JobSettings
from services.dispatcher.metrics import DispatcherMetrics
from services.dispatcher.resilience import RetryPolicy
from services.dispatcher.settings import PREFIX, DispatcherSettings
from services.dispatcher.spoke import Spoke, SpokePolicy
from services.dispatcher.tracking import JobEvents
from services.dispatcher.watcher import WatchPolicy

SERVICE_NAME = dispatcher_pb2.DESCRIPTOR.services_by_name["DispatcherService"].full_name


def job_request(
    app_wrapper: common_pb2.AppWrapper, suspended: bool = False, checkpointing: bool = False
) -> JobRequest:
    template = app_wrapper.template
    interruptible = app_wrapper.interruptible
    return JobRequest(
        app_wrapper_id=app_wrapper.id,
        image=template.image,
        name=app_wrapper.name,
        tenant=app_wrapper.tenant,
        command=tuple(template.command),
        args=tuple(template.args),
        env=tuple((e.name, e.value) for e in template.env),
        cpu_millis=template.resources.cpu_millis,
        memory_bytes=template.resources.memory_bytes,
        gpus=template.resources.gpus,
        expected_runtime_seconds=duration_seconds(template.expected_runtime),
        deadline=from_timestamp(app_wrapper.deadline) if app_wrapper.HasField("deadline") else None,
        labels=dict(app_wrapper.labels),
        interruptible=app_wrapper.HasField("interruptible"),
        resume_overhead_seconds=duration_seconds(interruptible.resume_overhead),
        max_pauses=interruptible.max_pauses if interruptible.HasField("max_pauses") else None,
        checkpointing=checkpointing,
        suspended=suspended,
    )


def resources_pb(value: Resources) -> common_pb2.Resources:
    return common_pb2.Resources(cpu_millis=value.cpu_millis, memory_bytes=value.memory_bytes, gpus=value.gpus)


def probe_pb(probe: ClusterProbe) -> dispatcher_pb2.ClusterProbe:
    return dispatcher_pb2.ClusterProbe(
        cluster=probe.cluster,
        ready=probe.ready,
        reason=probe.reason,
        allocatable=resources_pb(probe.allocatable),
        free=resources_pb(probe.free),
        probed_at=to_timestamp(probe.probed_at),
        ready_nodes=probe.ready_nodes,
        unknown_spoke=probe.unknown_spoke,
    )


def event_pb(event: JobEvent | ClusterEvent | Bookmark) -> dispatcher_pb2.WatchJobEventsResponse:
    if isinstance(event, Bookmark):
        return dispatcher_pb2.WatchJobEventsResponse(bookmark=True)
    if isinstance(event, ClusterEvent):
        return dispatcher_pb2.WatchJobEventsResponse(
            cluster=dispatcher_pb2.ClusterEvent(
                cluster=event.cluster,
                ready=event.ready,
                reason=event.reason,
                observed_at=to_timestamp(event.observed_at) if event.observed_at else None,
            )
        )
    job = dispatcher_pb2.JobEvent(
        app_wrapper_id=event.app_wrapper_id,
        cluster=event.cluster,
        namespace=event.namespace,
        job_name=event.job_name,
        phase=f"JOB_PHASE_{event.phase.value}",  # by name: protobuf checks it against the enum
        reason=event.reason,
        suspensions=event.suspensions,
        interruptible=event.interruptible,
        checkpointing=event.checkpointing,
    )
    for name in ("start_time", "completion_time", "observed_at", "suspended_at", "resumed_at"):
        value = getattr(event, name)
        if value is not None:
            getattr(job, name).CopyFrom(to_timestamp(value))
    return dispatcher_pb2.WatchJobEventsResponse(job=job)


class DispatcherServiceServicer(dispatcher_pb2_grpc.DispatcherServiceServicer):
    def __init__(self, dispatcher: Dispatcher):
        self.dispatcher = dispatcher

    async def DispatchJob(self, request, context):
        gate = from_timestamp(request.gate_opened_at) if request.HasField("gate_opened_at") else None
        result = await self.dispatcher.dispatch(
            job_request(request.app_wrapper, request.suspended, request.checkpointing),
            request.cluster,
            request.kube_context,
            request.namespace,
            gate,
        )
        return dispatcher_pb2.DispatchJobResponse(
            job_name=result.job_name,
            namespace=result.namespace,
            cluster=result.cluster,
            created=result.created,
        )

    async def CancelJob(self, request, context):
        deleted = await self.dispatcher.cancel(
            request.app_wrapper_id, request.cluster, request.kube_context, request.namespace
        )
        return dispatcher_pb2.CancelJobResponse(deleted=deleted)

    async def SetJobSuspended(self, request, context):
        result = await self.dispatcher.set_suspended(
            request.app_wrapper_id, request.suspend, request.cluster, request.kube_context, request.namespace
        )
        return dispatcher_pb2.SetJobSuspendedResponse(
            job_name=result.job_name,
            namespace=result.namespace,
            cluster=result.cluster,
            changed=result.changed,
            suspended=result.suspended,
            suspensions=result.suspensions,
        )

    async def ListSpokes(self, request, context):
        return dispatcher_pb2.ListSpokesResponse(
            spokes=[
                dispatcher_pb2.Spoke(cluster=s.cluster, kube_context=s.kube_context, server=s.server)
                for s in self.dispatcher.list_spokes()
            ]
        )

    async def ProbeClusters(self, request, context):
        probes = await self.dispatcher.probe(list(request.clusters), context.time_remaining())
        return dispatcher_pb2.ProbeClustersResponse(clusters=[probe_pb(p) for p in probes])

    async def WatchJobEvents(self, request, context):
        subscription = await self.dispatcher.subscribe()
        try:
            async for event in subscription.events():
                yield event_pb(event)
        finally:
            self.dispatcher.events.unsubscribe(subscription)


def spoke_configs(settings: DispatcherSettings):
    """The spokes from the kubeconfig; a bad kubeconfig is a bad setting."""
    try:
        return load_spoke_configs(settings.kubeconfig, settings.contexts, settings.in_cluster_name)
    except (ConfigException, ValueError, OSError) as exc:
        raise SettingsError(f"{PREFIX}KUBECONFIG", str(exc)) from None


def build_dispatcher(
    settings: DispatcherSettings, metrics: DispatcherMetrics, clock: Clock, configs=None
) -> Dispatcher:
    policy = SpokePolicy(
        retry=RetryPolicy(settings.retry_attempts, settings.retry_base_seconds, settings.retry_max_seconds),
        timeouts=Timeouts(settings.connect_timeout_seconds, settings.request_timeout_seconds),
        breaker_failures=settings.breaker_failures,
        breaker_open_seconds=settings.breaker_open_seconds,
        probe_interval_seconds=settings.probe_interval_seconds,
        not_ready_after_seconds=settings.not_ready_after_seconds,
        threads=settings.threads_per_spoke,
    )
    configs = spoke_configs(settings) if configs is None else configs
    spokes = [
        Spoke(config, SpokeClient(configuration, settings.threads_per_spoke), policy, metrics)
        for config, configuration in configs
    ]
    return Dispatcher(
        spokes,
        JobEvents(clock, metrics, settings.subscriber_queue),
        clock,
        metrics,
        namespaces=settings.namespaces,
        job_settings=JobSettings(settings.backoff_limit, settings.ttl_seconds_after_finished),
        watch_policy=WatchPolicy(server_timeout_seconds=settings.watch_timeout_seconds),
        # By then a spoke has either been listed or been declared NotReady.
        snapshot_wait_seconds=settings.not_ready_after_seconds + settings.probe_interval_seconds,
    )


class DispatcherServer(GrpcServer):
    """The dispatcher's server; `dispatcher` is there for tests and benchmarks that look inside."""

    dispatcher: Dispatcher


async def build_server(
    settings: DispatcherSettings,
    registry: CollectorRegistry | None = None,
    clock: Clock | None = None,
    configs=None,
) -> DispatcherServer:
    clock = clock or clock_from_settings(load_clock_settings())
    server = DispatcherServer("dispatcher", settings, registry, clock=clock)
    dispatcher = build_dispatcher(settings, DispatcherMetrics.create(server.registry), clock, configs)
    await dispatcher.start()
    server.on_stop(dispatcher.stop)
    server.add_service(
        dispatcher_pb2_grpc.add_DispatcherServiceServicer_to_server,
        DispatcherServiceServicer(dispatcher),
        SERVICE_NAME,
    )
    server.dispatcher = dispatcher
    return server
