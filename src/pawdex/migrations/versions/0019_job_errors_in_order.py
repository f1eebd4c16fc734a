"""a job's errors are read in order from the index: pages of them, and the first few per job;
the dashboard counts the last hour's errors from an index on created_at

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 21:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # (job_id, id) serves everything (job_id) did, and the keyset order besides.
    op.create_index("ix_job_errors_job_id_id", "job_errors", ["job_id", "id"])
    op.drop_index("ix_job_errors_job_id", table_name="job_errors")
    op.create_index("ix_job_errors_created_at", "job_errors", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_job_errors_created_at", table_name="job_errors")
    op.create_index("ix_job_errors_job_id", "job_errors", ["job_id"])
    op.drop_index("ix_job_errors_job_id_id", table_name="job_errors")
