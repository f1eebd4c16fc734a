"""deletions recorded in a trash that can be restored, then purged

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deletions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target", sa.String(64), nullable=True),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("photos", sa.Integer(), nullable=False),
        sa.Column("deleted_by", sa.String(128), nullable=False),
        sa.Column(
            "deleted_by_key_id",
            sa.Integer(),
            sa.ForeignKey("api_keys.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("purge_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("restored_by", sa.String(128), nullable=True),
        sa.Column("restored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("purged_by", sa.String(128), nullable=True),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_deletions_purge_after", "deletions", ["purge_after"])
    op.create_table(
        "trashed_predictions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "image_id",
            sa.Integer(),
            sa.ForeignKey("images.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(32), nullable=True),
        sa.Column("species", sa.String(16), nullable=False),
        sa.Column("breed", sa.String(64), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("species_confidence", sa.Float(), nullable=False),
        sa.Column("top_k", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("catalog_species", sa.String(16), nullable=False),
        sa.Column("catalog_breed", sa.String(64), nullable=True),
        sa.Column("labelled", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_trashed_predictions_image_id", "trashed_predictions", ["image_id"])
    for table in ("images", "animals", "jobs", "libraries"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("deletion_id", sa.Integer(), nullable=True))
            batch.create_foreign_key(
                f"fk_{table}_deletion_id", "deletions", ["deletion_id"], ["id"]
            )
            if table == "images":
                batch.create_index("ix_images_deletion_id", ["deletion_id"])
            if table == "jobs":
                batch.add_column(sa.Column("created_by_key_id", sa.Integer(), nullable=True))
                batch.create_foreign_key(
                    "fk_jobs_created_by_key_id", "api_keys", ["created_by_key_id"], ["id"],
                    ondelete="SET NULL",
                )  # fmt: skip


def downgrade() -> None:
    for table in ("libraries", "jobs", "animals", "images"):
        with op.batch_alter_table(table) as batch:
            if table == "images":
                batch.drop_index("ix_images_deletion_id")
            if table == "jobs":
                batch.drop_constraint("fk_jobs_created_by_key_id", type_="foreignkey")
                batch.drop_column("created_by_key_id")
            batch.drop_constraint(f"fk_{table}_deletion_id", type_="foreignkey")
            batch.drop_column("deletion_id")
    op.drop_table("trashed_predictions")
    op.drop_table("deletions")
