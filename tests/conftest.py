import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The session PostgreSQL server and a fresh database per test, for the store tests of the second backend.
pytest_plugins = ["tests.support.postgres"]
