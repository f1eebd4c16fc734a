"""jobs people recognise: a name, where the job came from, who started it

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 13:10:00
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("name", sa.String(200), nullable=False, server_default=""))
        batch.add_column(
            sa.Column("origin", sa.String(16), nullable=False, server_default="upload")
        )
        batch.add_column(sa.Column("created_by", sa.String(128), nullable=True))
    # Earlier jobs are named as new ones would be, from what they recorded.
    conn = op.get_bind()
    jobs = sa.table(
        "jobs", sa.column("id"), sa.column("kind"), sa.column("source"), sa.column("name"),
        sa.column("origin"), sa.column("message"),
    )  # fmt: skip
    for job_id, kind, source, message in conn.execute(
        sa.select(jobs.c.id, jobs.c.kind, jobs.c.source, jobs.c.message)
    ).all():
        items = json.loads(source) if isinstance(source, str) else source or []
        if kind == "reindex":
            name, origin = message or "reindex", "admin"
        else:
            names = [item.get("name", "") for item in items] or [kind]
            name = names[0] if len(names) == 1 else f"{names[0]} and {len(names) - 1} more"
            origin = "upload"
        conn.execute(
            jobs.update().where(jobs.c.id == job_id).values(name=name[:200], origin=origin)
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("created_by")
        batch.drop_column("origin")
        batch.drop_column("name")
