"""python -m services.dispatcher: parse settings, build, serve."""

from services.common.logs import configure_logging
from services.common.server import run
from services.common.settings import exit_on_bad_settings
from services.dispatcher import settings as dispatcher_settings
from services.dispatcher.server import build_server


def main() -> None:
    settings = exit_on_bad_settings(dispatcher_settings.load)
    configure_logging("dispatcher", settings.log_level)
    run(lambda: build_server(settings))


if __name__ == "__main__":
    main()
