"""Durable hub state, split by aggregate; SQLite by default, PostgreSQL for several hub replicas.

- `records`: the values the store takes and returns (AppWrapperRecord, Change, Update, Lease, ...);
- `protocols`: one protocol per aggregate (AppWrapperStore, ChangeLog, ClusterStore, CycleCounter,
  IntensityCache, LeaseStore) and `Store`, all of them, which each backend implements;
- `schema`: the versioned migrations, written for both backends;
- `engine`: group commit, shared by both backends;
- `rows`: how an AppWrapper maps to its rows;
- `appwrappers`, `changes`, `clusters`, `meta`, `leases`: each aggregate's SQL on SQLite, and `sqlite`
  composes them into `SqliteStore`; `postgres/` does the same for `PostgresStore`;
- `quarantine`: rows whose record no longer decodes, set aside and reported; `startcheck`: SQLite's
  integrity check and write probe at open (`StoreRefused`);
- `fenced.FencedStore`: the store as the leader's loop sees it, every write carrying the lease's epoch;
- `factory.open_store`: the backend named by the settings.

Every change takes the next value of one global, monotonic revision (allocated in one place per backend);
AppWrapper changes are also written to the change log (bounded by compaction) so a watcher can resume from
any retained revision.
"""

from services.hub.phases import ACTIVE as ACTIVE_PHASES
from services.hub.phases import TERMINAL as TERMINAL_PHASES
from services.hub.phases import Phase
from services.hub.store.factory import open_store, store_from_settings
from services.hub.store.fenced import FencedStore
from services.hub.store.protocols import (
    AppWrapperStore,
    ChangeLog,
    ClusterStore,
    CycleCounter,
    IntensityCache,
    LeaseStore,
    Store,
    StoreLifecycle,
)
from services.hub.store.quarantine import Quarantined, QuarantineListener
from services.hub.store.records import (
    AppWrapperRecord,
    CarbonTotals,
    Change,
    ChangeKind,
    CommitListener,
    Fence,
    Fenced,
    InsertOutcome,
    IntensityRow,
    Lease,
    ListPage,
    ListQuery,
    Mutation,
    NewAppWrapper,
    RevisionCompacted,
    StoreRefused,
    StoreUnavailable,
    Update,
)
from services.hub.store.schema import MIGRATIONS, Migration, migrate
from services.hub.store.sqlite import SqliteStore

__all__ = [
    "ACTIVE_PHASES",
    "MIGRATIONS",
    "TERMINAL_PHASES",
    "AppWrapperRecord",
    "AppWrapperStore",
    "CarbonTotals",
    "Change",
    "ChangeKind",
    "ChangeLog",
    "ClusterStore",
    "CommitListener",
    "CycleCounter",
    "Fence",
    "FencedStore",
    "Fenced",
    "InsertOutcome",
    "IntensityCache",
    "IntensityRow",
    "Lease",
    "LeaseStore",
    "ListPage",
    "ListQuery",
    "Migration",
    "Mutation",
    "NewAppWrapper",
    "Phase",
    "QuarantineListener",
    "Quarantined",
    "RevisionCompacted",
    "SqliteStore",
    "Store",
    "StoreLifecycle",
    "StoreRefused",
    "StoreUnavailable",
    "Update",
    "migrate",
    "open_store",
    "store_from_settings",
]
