"""newest-first indexes within a breed and within a species

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 09:50:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_predictions_model_breed_created",
        "predictions",
        ["model_version_id", "breed", "created_at", "image_id"],
    )
    op.create_index(
        "ix_predictions_model_species_created",
        "predictions",
        ["model_version_id", "species", "created_at", "image_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_predictions_model_species_created", table_name="predictions")
    op.drop_index("ix_predictions_model_breed_created", table_name="predictions")
