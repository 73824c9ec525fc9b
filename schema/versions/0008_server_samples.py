"""Samples of the server's size over time (instances, studies, disk), for the admin dashboard's
ingest and storage-growth plots.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "server_samples",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("taken_at", sa.Float, nullable=False, index=True),
        sa.Column("instances", sa.Integer, nullable=False),
        sa.Column("studies", sa.Integer, nullable=False),
        sa.Column("disk_bytes", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("server_samples")
