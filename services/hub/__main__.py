"""python -m services.hub: parse settings, build, serve."""

from services.common.logs import configure_logging
from services.common.server import run
from services.common.settings import exit_on_bad_settings
from services.hub import settings as hub_settings
from services.hub.server import build_server


def main() -> None:
    settings = exit_on_bad_settings(hub_settings.load)
    configure_logging("hub", settings.log_level)
    run(lambda: build_server(settings))


if __name__ == "__main__":
    main()
