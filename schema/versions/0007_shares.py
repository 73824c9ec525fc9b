"""Patient share links: shares, their studies, viewing sessions and single-use download tickets.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shares",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("patient_id", sa.String(128), nullable=False, index=True),
        sa.Column("created_by", sa.String(128), nullable=False, index=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=True),
        sa.Column("max_downloads", sa.Integer, nullable=True),
        sa.Column("downloads", sa.Integer, nullable=False),
        sa.Column("one_time", sa.Boolean, nullable=False),
        sa.Column("opens", sa.Integer, nullable=False),
        sa.Column("first_opened_at", sa.Float, nullable=True),
        sa.Column("last_opened_at", sa.Float, nullable=True),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("recipient_email", sa.Text, nullable=True),
        sa.Column("recipient_mobile", sa.Text, nullable=True),
        sa.Column("consent", sa.Text, nullable=False),
        sa.Column("revoked_at", sa.Float, nullable=True),
        sa.Column("revoked_by", sa.String(128), nullable=True),
    )
    op.create_table(
        "share_studies",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("share_id", sa.Integer, sa.ForeignKey("shares.id"), nullable=False, index=True),
        sa.Column("study_uid", sa.String(128), nullable=False),
        sa.Column("orthanc_study_id", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
    )
    op.create_table(
        "share_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("share_id", sa.Integer, sa.ForeignKey("shares.id"), nullable=False, index=True),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("source_ip", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False, index=True),
    )
    op.create_table(
        "share_tickets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ticket_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("share_id", sa.Integer, sa.ForeignKey("shares.id"), nullable=False, index=True),
        sa.Column("target", sa.String(2048), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("used_at", sa.Float, nullable=True),
    )


def downgrade() -> None:
    for table in ("share_tickets", "share_sessions", "share_studies", "shares"):
        op.drop_table(table)
