"""mixed and unknown breed labels, label withdrawal

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("labels") as batch:
        batch.add_column(sa.Column("breeds", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("mix", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("withdrawn_by", sa.String(128), nullable=True))
    # Every earlier label named one breed (a pure breed): its list is that breed. Bound per
    # breed as JSON, because a JSON cast in SQL means different things on SQLite and Postgres.
    labels = sa.table("labels", sa.column("breed", sa.String()), sa.column("breeds", sa.JSON()))
    bind = op.get_bind()
    breeds = bind.execute(
        sa.select(labels.c.breed).where(labels.c.breed.is_not(None)).distinct()
    ).scalars()
    for breed in list(breeds):
        bind.execute(labels.update().where(labels.c.breed == breed).values(breeds=[breed]))


def downgrade() -> None:
    with op.batch_alter_table("labels") as batch:
        batch.drop_column("withdrawn_by")
        batch.drop_column("withdrawn_at")
        batch.drop_column("mix")
        batch.drop_column("breeds")
