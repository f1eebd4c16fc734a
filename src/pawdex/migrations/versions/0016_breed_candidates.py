"""breed candidates (top-k) per prediction, review index for not-a-dog, animal intake date

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Each prediction's top-k, one row per breed: "might be a Labrador" is one range scan of
# (model version, breed, probability) instead of reading every prediction's JSON. Triggers
# keep it, as they keep breed_tallies, so every writer of predictions (classify, a reindex's
# upsert, the bench's COPY, a test's seed) writes the candidates too; deletes cascade.
_PG_ROWS = (
    "SELECT n.id, e->>'breed', n.model_version_id, n.image_id, (e->>'confidence')::float"
    " FROM {rows} n, json_array_elements(n.top_k::json) e"
    " WHERE e->>'breed' IS NOT NULL AND e->>'confidence' IS NOT NULL"
)
_SQLITE_ROWS = (
    "SELECT n.id, json_extract(e.value, '$.breed'), n.model_version_id, n.image_id,"
    " json_extract(e.value, '$.confidence') FROM {rows} n, json_each(n.top_k) e"
    " WHERE json_extract(e.value, '$.breed') IS NOT NULL"
    " AND json_extract(e.value, '$.confidence') IS NOT NULL"
)
_INSERT = (
    "INSERT INTO breed_candidates (prediction_id, breed, model_version_id, image_id, confidence)"
)
# An UPDATE rewrites a row's candidates only when what they copy changed (a reindex's
# upsert), not when a label changes what the catalogue shows.
_PG_CHANGED = (
    "(SELECT n.* FROM new_rows n JOIN old_rows o ON o.id = n.id"
    " WHERE n.top_k::text IS DISTINCT FROM o.top_k::text"
    " OR n.model_version_id <> o.model_version_id OR n.image_id <> o.image_id)"
)
_PG_FUNCTIONS = {
    "insert": f"{_INSERT} {_PG_ROWS.format(rows='new_rows')} ON CONFLICT DO NOTHING;",
    "update": f"DELETE FROM breed_candidates c USING {_PG_CHANGED} n"
    " WHERE c.prediction_id = n.id;"
    f" {_INSERT} {_PG_ROWS.format(rows=_PG_CHANGED)} ON CONFLICT DO NOTHING;",
}
_PG_REFERENCING = {
    "insert": "NEW TABLE AS new_rows",
    "update": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
}
_SQLITE_NEW = "(SELECT NEW.id AS id, NEW.model_version_id AS model_version_id,"
_SQLITE_NEW += " NEW.image_id AS image_id, NEW.top_k AS top_k)"
_SQLITE_TRIGGERS = {
    "insert": "AFTER INSERT ON predictions BEGIN"
    f" {_INSERT} {_SQLITE_ROWS.format(rows=_SQLITE_NEW)} ON CONFLICT DO NOTHING; END",
    "update": "AFTER UPDATE OF top_k, model_version_id, image_id ON predictions BEGIN"
    " DELETE FROM breed_candidates WHERE prediction_id = OLD.id;"
    f" {_INSERT} {_SQLITE_ROWS.format(rows=_SQLITE_NEW)} ON CONFLICT DO NOTHING; END",
}


def upgrade() -> None:
    postgresql = op.get_context().dialect.name == "postgresql"
    op.create_table(
        "breed_candidates",
        sa.Column(
            "prediction_id",
            sa.Integer(),
            sa.ForeignKey("predictions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("breed", sa.String(64), primary_key=True),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
    )
    rows = (_PG_ROWS if postgresql else _SQLITE_ROWS).format(rows="predictions")
    op.execute(f"{_INSERT} {rows} ON CONFLICT DO NOTHING")
    # Built after the backfill: one sort instead of a million index insertions.
    op.create_index(
        "ix_breed_candidates_model_breed_conf",
        "breed_candidates",
        ["model_version_id", "breed", "confidence", "image_id"],
        postgresql_include=["prediction_id"],
    )
    if postgresql:
        for event, body in _PG_FUNCTIONS.items():
            op.execute(
                f"CREATE FUNCTION breed_candidates_{event}() RETURNS trigger"
                f" LANGUAGE plpgsql AS $$ BEGIN {body} RETURN NULL; END $$"
            )
            op.execute(
                f"CREATE TRIGGER breed_candidates_{event} AFTER {event.upper()} ON predictions"
                f" REFERENCING {_PG_REFERENCING[event]} FOR EACH STATEMENT"
                f" EXECUTE FUNCTION breed_candidates_{event}()"
            )
        # The review queue leaves out photos the model is sure are not dogs, and photos filter
        # by date: what that needs rides in the index they walk (SQLite's have no INCLUDE).
        op.drop_index("ix_predictions_model_conf", table_name="predictions")
        op.create_index(
            "ix_predictions_model_conf",
            "predictions",
            ["model_version_id", "confidence", "image_id"],
            postgresql_include=["labelled", "species", "species_confidence", "created_at"],
        )
    else:
        for event, body in _SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER breed_candidates_{event} {body}")
    with op.batch_alter_table("animals") as batch:
        batch.add_column(sa.Column("intake_date", sa.Date(), nullable=True))
        batch.create_index("ix_animals_intake_date", ["intake_date"])


def downgrade() -> None:
    postgresql = op.get_context().dialect.name == "postgresql"
    with op.batch_alter_table("animals") as batch:
        batch.drop_index("ix_animals_intake_date")
        batch.drop_column("intake_date")
    if postgresql:
        op.drop_index("ix_predictions_model_conf", table_name="predictions")
        op.create_index(
            "ix_predictions_model_conf",
            "predictions",
            ["model_version_id", "confidence", "image_id"],
            postgresql_include=["labelled"],
        )
    for event in _SQLITE_TRIGGERS:
        op.execute(
            f"DROP TRIGGER breed_candidates_{event}" + (" ON predictions" if postgresql else "")
        )
        if postgresql:
            op.execute(f"DROP FUNCTION breed_candidates_{event}()")
    op.drop_index("ix_breed_candidates_model_breed_conf", table_name="breed_candidates")
    op.drop_table("breed_candidates")
