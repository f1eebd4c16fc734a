"""what the catalogue shows (a person's label over the model's answer) on each prediction

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FILTERED = {"breed": "catalog_breed", "species": "catalog_species"}
SORTS = {"conf": "confidence", "created": "created_at"}


def upgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("catalog_species", sa.String(16), nullable=True))
        batch.add_column(sa.Column("catalog_breed", sa.String(64), nullable=True))
        batch.add_column(
            sa.Column("labelled", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.execute("UPDATE predictions SET catalog_species = species, catalog_breed = breed")
    op.execute(
        "UPDATE predictions SET labelled = true,"
        " catalog_species = (SELECT species FROM labels WHERE labels.image_id ="
        " predictions.image_id AND labels.current),"
        " catalog_breed = (SELECT breed FROM labels WHERE labels.image_id ="
        " predictions.image_id AND labels.current)"
        " WHERE EXISTS (SELECT 1 FROM labels WHERE labels.image_id = predictions.image_id"
        " AND labels.current)"
    )
    with op.batch_alter_table("predictions") as batch:
        batch.alter_column("catalog_species", existing_type=sa.String(16), nullable=False)
    # Every catalogue index again: on the shown breed and species, the other filtered
    # columns included (PostgreSQL), and a partial one over the labelled photos.
    for short, sort in SORTS.items():
        include = ["confidence", "labelled"] if sort == "created_at" else ["labelled"]
        op.drop_index(f"ix_predictions_model_{short}", table_name="predictions")
        op.create_index(
            f"ix_predictions_model_{short}",
            "predictions",
            ["model_version_id", sort, "image_id"],
            postgresql_include=include,
        )
        for name, column in FILTERED.items():
            index = f"ix_predictions_model_{name}_{short}"
            op.drop_index(index, table_name="predictions")
            op.create_index(
                index,
                "predictions",
                ["model_version_id", column, sort, "image_id"],
                postgresql_include=include,
            )
        op.create_index(
            f"ix_predictions_labelled_{short}",
            "predictions",
            ["model_version_id", sort, "image_id"],
            postgresql_where=sa.text("labelled"),
            sqlite_where=sa.text("labelled"),
            postgresql_include=["catalog_species", "catalog_breed", *include[:-1]],
        )


def downgrade() -> None:
    for short, sort in SORTS.items():
        op.drop_index(f"ix_predictions_labelled_{short}", table_name="predictions")
        op.drop_index(f"ix_predictions_model_{short}", table_name="predictions")
        op.create_index(
            f"ix_predictions_model_{short}", "predictions", ["model_version_id", sort, "image_id"]
        )
        for name in FILTERED:
            index = f"ix_predictions_model_{name}_{short}"
            op.drop_index(index, table_name="predictions")
            op.create_index(index, "predictions", ["model_version_id", name, sort, "image_id"])
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("labelled")
        batch.drop_column("catalog_breed")
        batch.drop_column("catalog_species")
