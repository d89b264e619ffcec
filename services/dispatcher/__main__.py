"""python -m services.dispatcher: parse settings, build, serve."""

from services.common.clock import clock_from_settings, load_clock_settings
from services.common.logs import configure_logging
from services.common.server import run
from services.common.settings import exit_on_bad_settings
from services.dispatcher import settings as dispatcher_settings
from services.dispatcher.server import build_server, spoke_configs


def main() -> None:
    settings = exit_on_bad_settings(dispatcher_settings.load)
    clock = clock_from_settings(exit_on_bad_settings(load_clock_settings))
    configs = exit_on_bad_settings(lambda: spoke_configs(settings))
    configure_logging("dispatcher", settings.log_level)
    run(lambda: build_server(settings, clock=clock, configs=configs))


if __name__ == "__main__":
    main()
