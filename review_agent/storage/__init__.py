"""Checkpointers and stores: SQLite (embedded default), Postgres, the Redis hot tier."""
