"""python -m services.optimizer: parse settings, build, serve."""

from services.common.clock import clock_from_settings, load_clock_settings
from services.common.logs import configure_logging
from services.common.server import run
from services.common.settings import exit_on_bad_settings
from services.optimizer import settings as optimizer_settings
from services.optimizer.server import build_server


def main() -> None:
    settings = exit_on_bad_settings(optimizer_settings.load)
    clock = clock_from_settings(exit_on_bad_settings(load_clock_settings))
    configure_logging("optimizer", settings.log_level)
    run(lambda: build_server(settings, clock=clock))


if __name__ == "__main__":
    main()
