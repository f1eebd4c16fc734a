"""animals: photos grouped into shelter animals (every earlier photo its own animal)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "animals",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("external_id", sa.String(64), nullable=True, unique=True),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("animal_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_images_animal_id", "animals", ["animal_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_index("ix_images_animal_id", ["animal_id"])
    for table in ("jobs", "libraries"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("grouping", sa.String(300), nullable=False, server_default="photo")
            )
    # One photo, one animal, as until now: the animal takes its photo's id.
    op.execute("INSERT INTO animals (id, created_at) SELECT id, created_at FROM images")
    op.execute("UPDATE images SET animal_id = id")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "SELECT setval(pg_get_serial_sequence('animals', 'id'),"
            " COALESCE((SELECT max(id) FROM animals), 0) + 1, false)"
        )


def downgrade() -> None:
    for table in ("libraries", "jobs"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("grouping")
    with op.batch_alter_table("images") as batch:
        batch.drop_index("ix_images_animal_id")
        batch.drop_constraint("fk_images_animal_id", type_="foreignkey")
        batch.drop_column("animal_id")
    op.drop_table("animals")
