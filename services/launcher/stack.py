"""The whole system as local processes: simulated spokes, carbon, optimizer(s), dispatcher and hub.

Used by `make run`, `make demo` and the end-to-end tests. Every process shares one simulated clock (the same
CASPIAN_CLOCK_START / SPEEDUP / ANCHOR), so carbon replay, the hub's plan and the spokes' Jobs move together.
"""

from __future__ import annotations

import os
import pathlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import grpc

from caspian.v1 import hub_pb2, hub_pb2_grpc
from caspianctl.specs import cluster_from_document, load_documents
from clusters.simulator.kubeconfig import write_kubeconfig
from clusters.simulator.spec import load_spokes
from services.common.timeconv import parse_time
from services.launcher.procs import ServiceProcess

ROOT = pathlib.Path(__file__).resolve().parents[2]
CLUSTERS_FILE = ROOT / "deploy" / "examples" / "clusters.yaml"
FIXED_PORTS = {"hub": 50050, "carbon": 50051, "optimizer": 50052, "dispatcher": 50053}
FIXED_METRICS = {"hub": 9100, "carbon": 9101, "optimizer": 9102, "dispatcher": 9103}
CONSOLE_PORT = 8080


@dataclass(frozen=True)
class StackTLS:
    """mTLS between every process of the stack: each service serves with `server_cert` and requires a client
    certificate signed by `ca`; each presents `client_cert` when it calls another (PEM file paths)."""

    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str

    def service_env(self, name: str) -> dict[str, str]:
        prefix = f"CASPIAN_{name.upper()}_"
        return {
            prefix + "TLS_CERT_FILE": self.server_cert,
            prefix + "TLS_KEY_FILE": self.server_key,
            prefix + "TLS_CLIENT_CA_FILE": self.ca,
            prefix + "CLIENT_CA_FILE": self.ca,
            prefix + "CLIENT_CERT_FILE": self.client_cert,
            prefix + "CLIENT_KEY_FILE": self.client_key,
        }

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            pathlib.Path(self.ca).read_bytes(),
            pathlib.Path(self.client_key).read_bytes(),
            pathlib.Path(self.client_cert).read_bytes(),
        )


@dataclass
class StackConfig:
    workdir: pathlib.Path
    # Fixed well-known ports (make run) or ephemeral ones (tests).
    fixed_ports: bool = False
    clock_start: str = "2023-06-01T00:00:00Z"
    clock_speedup: float = 720.0
    # "sim": the shared accelerated clock above; "wall": real time (e.g. with live Electricity Maps data).
    clock_mode: str = "sim"
    optimizer_replicas: int = 1
    # Extra environment per service name ("hub", "carbon", "optimizer", "dispatcher", "spoke").
    env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    echo_logs: bool = False
    # Each process's log (its stderr) also goes to <log_dir>/<name>.log; None: kept in memory only.
    log_dir: pathlib.Path | None = None
    # mTLS between the services (and for the stack's own calls to the hub); None: plaintext.
    tls: StackTLS | None = None
    # Bearer token (admin role) the stack presents to the hub when it registers the spokes; empty: none.
    hub_token: str = ""
    # Start the web console (services.console) in front of the hub and carbon.
    console: bool = False


class Stack:
    def __init__(self, config: StackConfig):
        self.config = config
        self.anchor = time.time()
        self.spokes: dict[str, ServiceProcess] = {}
        self.services: dict[str, ServiceProcess] = {}
        self.optimizers: list[ServiceProcess] = []
        # Processes replaced by start_service / start_spoke, kept for their logs.
        self.retired: list[ServiceProcess] = []
        self.kubeconfig = config.workdir / "kubeconfig"
        self.console: ServiceProcess | None = None

    def sim_now(self) -> datetime:
        """The stack's simulated time, computed as every process computes it."""
        if self.config.clock_mode == "wall":
            return datetime.now(UTC)
        elapsed = (time.time() - self.anchor) * self.config.clock_speedup
        return parse_time(self.config.clock_start) + timedelta(seconds=elapsed)

    def fixed_ports(self) -> dict[str, int]:
        """Every port the stack will listen on when it uses the well-known ones; empty otherwise."""
        if not self.config.fixed_ports:
            return {}
        ports = {}
        for name in FIXED_PORTS:
            for replica in range(self.config.optimizer_replicas if name == "optimizer" else 1):
                label = name if replica == 0 else f"{name}-{replica}"
                ports[label] = FIXED_PORTS[name] + 10 * replica
                ports[f"{label} metrics"] = FIXED_METRICS[name] + 10 * replica
        if self.config.console:
            ports["web console"] = int(os.environ.get("CASPIAN_CONSOLE_PORT", str(CONSOLE_PORT)))
        return ports

    def _log_file(self, name: str) -> pathlib.Path | None:
        return None if self.config.log_dir is None else self.config.log_dir / f"{name}.log"

    # -- environment -------------------------------------------------------------------------------------
    def clock_env(self) -> dict[str, str]:
        if self.config.clock_mode == "wall":
            return {"CASPIAN_CLOCK_MODE": "wall"}
        return {
            "CASPIAN_CLOCK_MODE": "sim",
            "CASPIAN_CLOCK_START": self.config.clock_start,
            "CASPIAN_CLOCK_SPEEDUP": str(self.config.clock_speedup),
            "CASPIAN_CLOCK_ANCHOR": repr(self.anchor),
        }

    def _service_env(self, name: str, replica: int = 0) -> dict[str, str]:
        prefix = f"CASPIAN_{name.upper()}_"
        env = dict(self.clock_env())
        if self.config.fixed_ports:
            env[prefix + "PORT"] = str(FIXED_PORTS[name] + (10 * replica))
            env[prefix + "METRICS_PORT"] = str(FIXED_METRICS[name] + (10 * replica))
        else:
            env[prefix + "PORT"] = "0"
            env[prefix + "METRICS_PORT"] = "0"
        if self.config.tls is not None:
            env.update(self.config.tls.service_env(name))
        env.update(self.config.env.get(name, {}))
        return env

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> Stack:
        self.config.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_spokes()
            self._start("carbon", self._service_env("carbon"))
            for replica in range(self.config.optimizer_replicas):
                proc = ServiceProcess(
                    "services.optimizer",
                    env=self._service_env("optimizer", replica),
                    echo_logs=self.config.echo_logs,
                    log_file=self._log_file("optimizer" if replica == 0 else f"optimizer-{replica}"),
                ).start()
                self.optimizers.append(proc)
            dispatcher_env = self._service_env("dispatcher")
            dispatcher_env.setdefault("CASPIAN_DISPATCHER_KUBECONFIG", str(self.kubeconfig))
            self._start("dispatcher", dispatcher_env)
            self.start_hub()
            self.register_clusters()
            if self.config.console:
                self.start_console()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_spokes(self) -> None:
        servers = {}
        for name in load_spokes():
            proc = self._spoke_process(name, 0).start()
            self.spokes[name] = proc
            servers[name] = f"http://{proc.address}"
        write_kubeconfig(self.kubeconfig, servers)

    def _spoke_process(self, name: str, port: int) -> ServiceProcess:
        state = self.config.workdir / f"spoke-{name}.json"
        return ServiceProcess(
            "clusters.simulator",
            env={**self.clock_env(), **self.config.env.get("spoke", {})},
            args=("--name", name, "--port", str(port), "--state-file", str(state)),
            echo_logs=self.config.echo_logs,
            log_file=self._log_file(f"spoke-{name}"),
        )

    def stop_spoke(self, name: str, kill: bool = False) -> None:
        """Stop one simulated spoke (SIGTERM, or SIGKILL with kill=True); its objects stay in its state file."""
        proc = self.spokes[name]
        proc.kill() if kill else proc.terminate()

    def start_spoke(self, name: str) -> ServiceProcess:
        """Start a stopped spoke again on the same port with the same state file: the kubeconfig stays valid."""
        old = self.spokes[name]
        if old.proc is not None and old.proc.poll() is None:
            raise RuntimeError(f"spoke {name} is still running")
        self.retired.append(old)
        self.spokes[name] = self._spoke_process(name, old.port).start()
        return self.spokes[name]

    def _start(self, name: str, env: dict[str, str]) -> ServiceProcess:
        proc = ServiceProcess(
            f"services.{name}", env=env, echo_logs=self.config.echo_logs, log_file=self._log_file(name)
        ).start()
        self.services[name] = proc
        return proc

    def optimizer_target(self) -> str:
        addresses = ",".join(p.address for p in self.optimizers)
        return f"ipv4:{addresses}"

    def hub_env(self) -> dict[str, str]:
        env = self._service_env("hub")
        env.setdefault("CASPIAN_HUB_DB_PATH", str(self.config.workdir / "hub.db"))
        env["CASPIAN_HUB_CARBON_ADDRESS"] = self.services["carbon"].address
        env["CASPIAN_HUB_DISPATCHER_ADDRESS"] = self.services["dispatcher"].address
        env["CASPIAN_HUB_OPTIMIZER_ADDRESS"] = self.optimizer_target()
        env["CASPIAN_HUB_OPTIMIZER_ROUND_ROBIN"] = "true"
        return env

    def start_hub(self) -> ServiceProcess:
        return self._start("hub", self.hub_env())

    def start_console(self) -> ServiceProcess:
        """The web console: an HTTP client of the hub's and carbon's public APIs, like caspianctl."""
        env = {
            # `make run` uses 8080 unless CASPIAN_CONSOLE_PORT names another.
            "CASPIAN_CONSOLE_PORT": os.environ.get("CASPIAN_CONSOLE_PORT", str(CONSOLE_PORT))
            if self.config.fixed_ports
            else "0",
            "CASPIAN_CONSOLE_HUB_ADDRESS": self.hub_address,
            "CASPIAN_CONSOLE_CARBON_ADDRESS": self.services["carbon"].address,
        }
        if self.config.tls is not None:
            env.update(self.config.tls.service_env("console"))
        env.update(self.config.env.get("console", {}))
        self.console = ServiceProcess(
            "services.console", env=env, echo_logs=self.config.echo_logs, log_file=self._log_file("console")
        ).start()
        return self.console

    @property
    def console_url(self) -> str:
        return f"http://{self.console.address}/" if self.console is not None else ""

    def restart(self, name: str, kill: bool = True) -> ServiceProcess:
        proc = self.services[name]
        proc.kill() if kill else proc.terminate()
        fresh = ServiceProcess(
            proc.module, env=proc.env, args=proc.args, echo_logs=self.config.echo_logs, log_file=proc.log_file
        )
        # Keep the same port so that clients reconnect to it.
        port_var = f"CASPIAN_{name.upper()}_PORT"
        fresh.env = {**proc.env, port_var: str(proc.port)}
        self.services[name] = fresh.start()
        return self.services[name]

    def stop_service(self, name: str, kill: bool = True) -> None:
        """Stop one service (SIGKILL, or SIGTERM with kill=False) and leave it down; see start_service."""
        proc = self.services[name]
        proc.kill() if kill else proc.terminate()

    def start_service(self, name: str) -> ServiceProcess:
        """Start a stopped service again with its environment, on the same port (and the same database)."""
        proc = self.services[name]
        if proc.proc is not None and proc.proc.poll() is None:
            raise RuntimeError(f"{name} is still running")
        fresh = ServiceProcess(
            proc.module, env=proc.env, args=proc.args, echo_logs=self.config.echo_logs, log_file=proc.log_file
        )
        fresh.env = {**proc.env, f"CASPIAN_{name.upper()}_PORT": str(proc.port)}
        self.retired.append(proc)
        self.services[name] = fresh.start()
        return self.services[name]

    def kill_optimizer(self, replica: int) -> None:
        """SIGKILL one optimizer replica; the hub's round-robin channel keeps its address."""
        self.optimizers[replica].kill()

    def hub_channel(self) -> grpc.Channel:
        """A blocking channel to the hub, with the stack's client certificate when TLS is on."""
        if self.config.tls is None:
            return grpc.insecure_channel(self.hub_address)
        return grpc.secure_channel(self.hub_address, self.config.tls.channel_credentials())

    def hub_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.config.hub_token}"),) if self.config.hub_token else ()

    def register_clusters(self) -> None:
        docs = load_documents(str(CLUSTERS_FILE), ("items", "clusters"))
        metadata = self.hub_metadata()
        with self.hub_channel() as channel:
            stub = hub_pb2_grpc.HubServiceStub(channel)
            for doc in docs:
                cluster = cluster_from_document(doc)
                try:
                    stub.RegisterCluster(
                        hub_pb2.RegisterClusterRequest(cluster=cluster), timeout=10, metadata=metadata
                    )
                except grpc.RpcError as exc:
                    if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
                        raise
                    stub.UpdateCluster(
                        hub_pb2.UpdateClusterRequest(cluster=cluster), timeout=10, metadata=metadata
                    )

    @property
    def hub_address(self) -> str:
        return self.services["hub"].address

    def all_processes(self) -> list[ServiceProcess]:
        return [*self.spokes.values(), *self.services.values(), *self.optimizers]

    def stop(self) -> None:
        if self.console is not None:
            self.console.terminate()
        order = ["hub", "dispatcher", "carbon"]
        for name in order:
            if name in self.services:
                self.services[name].terminate()
        for proc in [*self.optimizers, *self.spokes.values()]:
            proc.terminate()
