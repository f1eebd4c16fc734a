"""photos per breed kept by triggers: breed_tallies, and the deltas the sweeper folds in

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 12:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# PostgreSQL: one statement-level trigger per event, each appending one row per breed the
# statement changed (a batch of predictions is one INSERT: a few rows, no lock on a shared
# counter). A row counts +1 under its catalog_breed after the change, -1 before it.
_PG_FUNCTIONS = {
    "insert": "SELECT model_version_id, catalog_breed, 1 FROM new_rows",
    "update": "SELECT model_version_id, catalog_breed, 1 FROM new_rows"
    " UNION ALL SELECT model_version_id, catalog_breed, -1 FROM old_rows",
    "delete": "SELECT model_version_id, catalog_breed, -1 FROM old_rows",
}
_PG_REFERENCING = {
    "insert": "NEW TABLE AS new_rows",
    "update": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "delete": "OLD TABLE AS old_rows",
}
# SQLite has row-level triggers only: one delta row per changed prediction.
_SQLITE_TRIGGERS = {
    "insert": "AFTER INSERT ON predictions WHEN NEW.catalog_breed IS NOT NULL BEGIN"
    " INSERT INTO breed_tally_deltas (model_version_id, breed, photos)"
    " VALUES (NEW.model_version_id, NEW.catalog_breed, 1); END",
    "update": "AFTER UPDATE OF catalog_breed, model_version_id ON predictions"
    " WHEN NEW.catalog_breed IS NOT OLD.catalog_breed"
    " OR NEW.model_version_id IS NOT OLD.model_version_id BEGIN"
    " INSERT INTO breed_tally_deltas (model_version_id, breed, photos)"
    " SELECT OLD.model_version_id, OLD.catalog_breed, -1 WHERE OLD.catalog_breed IS NOT NULL;"
    " INSERT INTO breed_tally_deltas (model_version_id, breed, photos)"
    " SELECT NEW.model_version_id, NEW.catalog_breed, 1 WHERE NEW.catalog_breed IS NOT NULL;"
    " END",
    "delete": "AFTER DELETE ON predictions WHEN OLD.catalog_breed IS NOT NULL BEGIN"
    " INSERT INTO breed_tally_deltas (model_version_id, breed, photos)"
    " VALUES (OLD.model_version_id, OLD.catalog_breed, -1); END",
}


def upgrade() -> None:
    op.create_table(
        "breed_tallies",
        sa.Column(
            "model_version_id",
            sa.Integer(),
            sa.ForeignKey("model_versions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("breed", sa.String(64), primary_key=True),
        sa.Column("photos", sa.Integer(), nullable=False),
    )
    op.create_table(
        "breed_tally_deltas",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("breed", sa.String(64), nullable=False),
        sa.Column("photos", sa.Integer(), nullable=False),
    )
    op.execute(
        "INSERT INTO breed_tallies (model_version_id, breed, photos)"
        " SELECT model_version_id, catalog_breed, count(*) FROM predictions"
        " WHERE catalog_breed IS NOT NULL GROUP BY model_version_id, catalog_breed"
    )
    if op.get_context().dialect.name == "postgresql":
        for event, rows in _PG_FUNCTIONS.items():
            op.execute(
                f"CREATE FUNCTION tally_predictions_{event}() RETURNS trigger"
                " LANGUAGE plpgsql AS $$ BEGIN"
                " INSERT INTO breed_tally_deltas (model_version_id, breed, photos)"
                " SELECT model_version_id, breed, sum(photos) FROM"
                f" ({rows}) AS changed (model_version_id, breed, photos)"
                " WHERE breed IS NOT NULL GROUP BY model_version_id, breed"
                " HAVING sum(photos) <> 0; RETURN NULL; END $$"
            )
            op.execute(
                f"CREATE TRIGGER tally_predictions_{event} AFTER {event.upper()} ON predictions"
                f" REFERENCING {_PG_REFERENCING[event]} FOR EACH STATEMENT"
                f" EXECUTE FUNCTION tally_predictions_{event}()"
            )
    else:
        for event, body in _SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER tally_predictions_{event} {body}")


def downgrade() -> None:
    postgresql = op.get_context().dialect.name == "postgresql"
    for event in _SQLITE_TRIGGERS:
        op.execute(
            f"DROP TRIGGER tally_predictions_{event}" + (" ON predictions" if postgresql else "")
        )
        if postgresql:
            op.execute(f"DROP FUNCTION tally_predictions_{event}()")
    op.drop_table("breed_tally_deltas")
    op.drop_table("breed_tallies")
