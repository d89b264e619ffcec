"""python -m services.carbon: parse settings, build, serve."""

from services.carbon import settings as carbon_settings
from services.carbon.server import build_server
from services.common.logs import configure_logging
from services.common.server import run
from services.common.settings import exit_on_bad_settings


def main() -> None:
    settings = exit_on_bad_settings(carbon_settings.load)
    configure_logging("carbon", settings.log_level)
    run(lambda: build_server(settings))


if __name__ == "__main__":
    main()
