"""A directory account is its directory entry: the entry's stable id, when it was last re-checked,
and an optional end date for API keys.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        # "uuid:<entryUUID>", "guid:<objectGUID hex>" or "dn:<normalised DN>"; NULL for local accounts
        # (and for directory accounts made before this revision, until their next sign-in).
        batch.add_column(sa.Column("directory_id", sa.String(512), nullable=True))
        batch.add_column(sa.Column("directory_checked_at", sa.Float, nullable=True))
        batch.create_unique_constraint("uq_users_directory_id", ["directory_id"])
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("expires_at", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("expires_at")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("uq_users_directory_id", type_="unique")
        batch.drop_column("directory_checked_at")
        batch.drop_column("directory_id")
