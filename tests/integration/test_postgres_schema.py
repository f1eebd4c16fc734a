"""Alembic's head on PostgreSQL matches the ORM models."""

import pytest
from sqlalchemy import create_engine

from pawdex.core.migrate import alembic_config
from tests.unit.test_migrations import schema_diff

pytestmark = pytest.mark.integration


def test_postgres_head_matches_models(pg_url):
    from alembic import command

    command.upgrade(alembic_config(pg_url), "head")
    engine = create_engine(pg_url)
    try:
        assert schema_diff(engine) == []
    finally:
        engine.dispose()


def test_postgres_path_index_serves_prefix_searches(pg_url):
    from alembic import command
    from sqlalchemy import text

    command.upgrade(alembic_config(pg_url), "head")
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            indexdef = conn.scalar(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_images_path'")
            )
        assert "text_pattern_ops" in indexdef
        command.downgrade(alembic_config(pg_url), "base")
        command.upgrade(alembic_config(pg_url), "head")
    finally:
        engine.dispose()
