import pathlib
import shutil
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The session PostgreSQL server and a fresh database per test, for the store tests of the second backend.
pytest_plugins = ["tests.support.postgres"]

# Tests that start service processes or a whole stack, or run long simulations: marked `slow`, so that
# `make test-fast` (-m "not slow") leaves them out. Whole directories, so new scenarios there are slow too.
SLOW_DIRECTORIES = ("e2e/", "reliability/", "launcher/")
SLOW_MODULES = (
    "test_processes.py",
    "carbon/test_process.py",
    "dispatcher/test_processes.py",
    "dispatcher/test_spoke_configs.py",
    "hub/test_process.py",
    "ops/test_compose_and_images.py",
    "ops/test_k8s.py",
    "evaluation/test_simulation.py",
    "console/test_console_browser.py",
    "dispatcher/test_suspend_processes.py",
    "hub/test_store_postgres.py",
    "hub/test_replicas.py",
    "hub/test_store_startcheck.py",
)
TESTS = pathlib.Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """One CA, server, client and rogue set per session (the openssl CLI takes about a second)."""
    from tests.support.certs import make_certs

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    return make_certs(tmp_path_factory.mktemp("certs"))


def pytest_collection_modifyitems(config, items):
    for item in items:
        try:
            where = item.path.resolve().relative_to(TESTS).as_posix()
        except ValueError:
            continue
        if where.startswith(SLOW_DIRECTORIES) or where in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
