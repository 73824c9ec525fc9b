"""Doctors registry, grants and the grant version every node polls.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "doctors",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("hpcsa_number", sa.String(16), nullable=False, unique=True),
        sa.Column("title", sa.String(32), nullable=False),
        sa.Column("first_name", sa.String(128), nullable=False),
        sa.Column("last_name", sa.String(128), nullable=False),
        sa.Column("email", sa.String(256), nullable=False),
        sa.Column("mobile", sa.String(20), nullable=False),
        sa.Column("practice", sa.String(256), nullable=False),
        sa.Column("aliases", sa.Text, nullable=False),
        sa.Column("username", sa.String(128), nullable=True, unique=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        # Ids are never reused: old grants name a deleted doctor's id, and must not reach a new one.
        sqlite_autoincrement=True,
    )
    op.create_table(
        "grants",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("subject_user", sa.String(128), nullable=True, index=True),
        sa.Column("subject_doctor_id", sa.Integer, nullable=True, index=True),
        sa.Column("patient_id", sa.String(128), nullable=True, index=True),
        sa.Column("study_uid", sa.String(128), nullable=True, index=True),
        sa.Column("orthanc_id", sa.String(64), nullable=True),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("expires_at", sa.Float, nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("revoked_at", sa.Float, nullable=True),
        sa.Column("revoked_by", sa.String(128), nullable=True),
    )
    op.create_table(
        "grant_version",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.execute("INSERT INTO grant_version (id, version) VALUES (1, 0)")


def downgrade() -> None:
    op.drop_table("grant_version")
    op.drop_table("grants")
    op.drop_table("doctors")
