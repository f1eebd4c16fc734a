"""each duplicate file of a job names the photo it repeats

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 13:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "job_duplicates",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column(
            "image_id",
            sa.Integer(),
            sa.ForeignKey("images.id", ondelete="CASCADE"),
            nullable=False,
        ),
    )
    op.create_index("ix_job_duplicates_job_id", "job_duplicates", ["job_id"])
    # Duplicates of earlier uploads were recorded with their photo; those of a photo twice in
    # one upload were only counted.
    op.execute(
        "INSERT INTO job_duplicates (job_id, name, image_id)"
        " SELECT job_id, name, image_id FROM job_images WHERE duplicate"
    )


def downgrade() -> None:
    op.drop_index("ix_job_duplicates_job_id", table_name="job_duplicates")
    op.drop_table("job_duplicates")
