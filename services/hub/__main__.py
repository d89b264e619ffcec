"""python -m services.hub: parse settings, build, serve."""

import sys

from services.common.logs import configure_logging
from services.common.server import run
from services.common.settings import exit_on_bad_settings
from services.hub import settings as hub_settings
from services.hub.server import build_server
from services.hub.store import StoreRefused, StoreUnavailable


def main() -> None:
    settings = exit_on_bad_settings(hub_settings.load)
    configure_logging("hub", settings.log_level)
    try:
        run(lambda: build_server(settings))
    except (StoreRefused, StoreUnavailable) as exc:
        # A damaged, locked or unwritable database: one line, no traceback, and never READY.
        print(
            f"hub not started: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
            file=sys.stderr,
        )
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
