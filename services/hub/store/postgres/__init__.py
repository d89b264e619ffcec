"""The store on PostgreSQL (psycopg 3, async, with a connection pool): several hub replicas share it."""

from services.hub.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
