"""Referrals, the review queue, the change-log cursor, the outbox, set-password links, and what a
doctor's record and a user's dashboard visits need for them.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("doctors") as batch:
        batch.add_column(sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("hpcsa_active", sa.Boolean, nullable=False, server_default=sa.true()))
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("visit_at", sa.Float, nullable=True))
        batch.add_column(sa.Column("previous_visit_at", sa.Float, nullable=True))
    op.create_table(
        "referrals",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("study_uid", sa.String(128), nullable=False, unique=True),
        sa.Column("orthanc_study_id", sa.String(64), nullable=False, index=True),
        sa.Column("patient_id", sa.String(128), nullable=False, index=True),
        sa.Column("accession_number", sa.String(64), nullable=False),
        sa.Column("written_name", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("doctor_id", sa.Integer, nullable=True, index=True),
        sa.Column("grant_id", sa.Integer, nullable=True),
        sa.Column("matched_by", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(512), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("resolved_at", sa.Float, nullable=True),
        sa.Column("resolved_by", sa.String(128), nullable=True),
    )
    op.create_table(
        "review_items",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("study_uid", sa.String(128), nullable=False, index=True),
        sa.Column("orthanc_study_id", sa.String(64), nullable=False),
        sa.Column("patient_id", sa.String(128), nullable=False, index=True),
        sa.Column("reason", sa.String(512), nullable=False),
        sa.Column("candidates", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("resolved_at", sa.Float, nullable=True),
        sa.Column("resolved_by", sa.String(128), nullable=True),
        sa.Column("resolution", sa.Text, nullable=False),
    )
    op.create_table(
        "change_cursor",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("last_seq", sa.Integer, nullable=False),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("idempotency_key", sa.String(256), nullable=False, unique=True),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.Float, nullable=False, index=True),
        sa.Column("claimed_at", sa.Float, nullable=True),
        sa.Column("last_error", sa.String(512), nullable=False),
        sa.Column("study_uid", sa.String(128), nullable=True),
        sa.Column("doctor_id", sa.Integer, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("sent_at", sa.Float, nullable=True),
    )
    op.create_table(
        "password_tokens",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("username", sa.String(128), nullable=False, index=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("used_at", sa.Float, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("password_tokens")
    op.drop_table("outbox")
    op.drop_table("change_cursor")
    op.drop_table("review_items")
    op.drop_table("referrals")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("previous_visit_at")
        batch.drop_column("visit_at")
    with op.batch_alter_table("doctors") as batch:
        batch.drop_column("hpcsa_active")
        batch.drop_column("disabled")
