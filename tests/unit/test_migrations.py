"""The ORM models and the Alembic head describe the same schema."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from pawdex.core.db import get_engine
from pawdex.core.models import Base


def schema_diff(engine) -> list:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)


def test_sqlite_head_matches_models(embedded_settings):
    assert schema_diff(get_engine(embedded_settings)) == []


def test_every_revision_downgrades_and_upgrades_again(embedded_settings):
    from alembic import command

    from pawdex.core.migrate import alembic_config

    config = alembic_config(embedded_settings.resolved_database_url)
    command.downgrade(config, "base")
    command.upgrade(config, "head")
    assert schema_diff(get_engine(embedded_settings)) == []
