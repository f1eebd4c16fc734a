"""a prediction in the trash loses its job when the job is purged, as a live one does: the
photo restores afterwards instead of failing on the missing job

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05 02:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Jobs purged before this revision left their ids behind.
    op.execute(
        "UPDATE trashed_predictions SET job_id = NULL WHERE job_id IS NOT NULL"
        " AND job_id NOT IN (SELECT id FROM jobs)"
    )
    with op.batch_alter_table("trashed_predictions") as batch:
        batch.create_foreign_key(
            "fk_trashed_predictions_job_id", "jobs", ["job_id"], ["id"], ondelete="SET NULL"
        )


def downgrade() -> None:
    with op.batch_alter_table("trashed_predictions") as batch:
        batch.drop_constraint("fk_trashed_predictions_job_id", type_="foreignkey")
