"""Alembic's head on PostgreSQL matches the ORM models."""

import pytest
from sqlalchemy import create_engine

from core.migrate import alembic_config
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
