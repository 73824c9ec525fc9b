"""TOTP multi-factor sign-in: per-user secret (encrypted), last used step, recovery codes, session MFA time.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("totp_secret", sa.Text, nullable=True))  # Fernet token
        batch.add_column(sa.Column("totp_enabled", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("totp_last_step", sa.Integer, nullable=False, server_default="0"))
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("mfa_at", sa.Float, nullable=True))
    op.create_table(
        "recovery_codes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False, index=True),
        sa.Column("code_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("used_at", sa.Float, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("recovery_codes")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("mfa_at")
    with op.batch_alter_table("users") as batch:
        for column in ("totp_last_step", "totp_enabled", "totp_secret"):
            batch.drop_column(column)
