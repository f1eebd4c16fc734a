"""libraries: server-side folders indexed in place (originals stay where they are)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.alter_column("stored_path", existing_type=sa.Text(), nullable=True)
    op.create_table(
        "libraries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("root", sa.Text(), nullable=False, unique=True),
        sa.Column("created_by", sa.String(128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "last_job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="SET NULL"),
            nullable=True,
        ),
    )  # fmt: skip
    op.create_table(
        "library_files",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "library_id", sa.Integer(), sa.ForeignKey("libraries.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column(
            "image_id", sa.Integer(), sa.ForeignKey("images.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column("seen_job_id", sa.String(32), nullable=True),
        sa.UniqueConstraint("library_id", "path", name="uq_library_files_path"),
    )  # fmt: skip
    op.create_index("ix_library_files_image_id", "library_files", ["image_id"])


def downgrade() -> None:
    op.drop_index("ix_library_files_image_id", table_name="library_files")
    op.drop_table("library_files")
    op.drop_table("libraries")
    with op.batch_alter_table("images") as batch:
        batch.alter_column("stored_path", existing_type=sa.Text(), nullable=False)
