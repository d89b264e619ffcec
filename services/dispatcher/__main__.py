"""python -m services.dispatcher: parse settings, build, serve."""

import gc

from kubernetes import client as k8s

from services.common.clock import clock_from_settings, load_clock_settings
from services.common.logs import configure_logging
from services.common.server import run
from services.common.settings import exit_on_bad_settings
from services.dispatcher import settings as dispatcher_settings
from services.dispatcher.server import build_server, spoke_configs


async def build(settings, clock, configs):
    server = await build_server(settings, clock=clock, configs=configs)
    # The kubernetes client's modules and models are over 100,000 long-lived objects. Frozen, they stay out of
    # full garbage collections, which would otherwise stop the event loop for about 100 ms each.
    _models = (k8s.V1Job, k8s.V1DeleteOptions, k8s.V1Preconditions)  # loads them and the models they use
    gc.freeze()
    return server


def main() -> None:
    settings = exit_on_bad_settings(dispatcher_settings.load)
    clock = clock_from_settings(exit_on_bad_settings(load_clock_settings))
    configs = exit_on_bad_settings(lambda: spoke_configs(settings))
    configure_logging("dispatcher", settings.log_level)
    run(lambda: build(settings, clock, configs))


if __name__ == "__main__":
    main()
