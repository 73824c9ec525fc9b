"""The migrations build exactly the tables and columns the models declare: a model changed without a
migration (or the reverse) fails here, not on a production store."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from plugin.store.models import Base


def test_migrations_match_the_models(store):
    with store.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    # Only what changes the tables counts: SQLite cannot tell some index and default details apart.
    structural = [d for d in differences if d[0] in ("add_table", "remove_table", "add_column", "remove_column")]
    assert structural == []
