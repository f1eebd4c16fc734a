"""The catalogue's queries keep the plans that make them fast at any size, checked with
EXPLAIN on PostgreSQL (no timing): with people's labels present, the photos nobody labelled
are found by an anti-join (and the labelled ones by a join), never by a left join whose
filter PostgreSQL cannot see through (it then sorted every image: 150 ms at 100k rows)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, event
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from bench.run import seed_catalog
from pawdex.core.catalog import AnimalFilters, AnimalSort, list_animals
from pawdex.core.settings import Settings
from pawdex.core.storage import Storage

pytestmark = pytest.mark.integration


def _plans(url: str, filters: AnimalFilters, sort: AnimalSort) -> list[dict]:
    """The JSON plans of the statements ``list_animals`` runs over the images."""
    engine = create_engine(url, poolclass=NullPool)
    captured: list[tuple[str, object]] = []
    event.listen(
        engine, "before_cursor_execute",
        lambda _c, _cur, statement, params, _ctx, _many: captured.append((statement, params)),
    )  # fmt: skip
    try:
        with Session(engine) as session:
            list_animals(session, filters, sort, limit=50)
        plans = []
        with engine.connect() as conn:
            for statement, params in list(captured):  # (the EXPLAINs are captured too)
                if "FROM images" in statement:
                    row = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, params)
                    plans.append(json.loads(json.dumps(row.scalar()))[0]["Plan"])
        return plans
    finally:
        engine.dispose()


def _joins(plan: dict) -> list[str]:
    found = [plan["Join Type"]] if "Join Type" in plan else []
    for child in plan.get("Plans", []):
        found += _joins(child)
    return found


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    import uuid

    import psycopg

    from tests.integration.conftest import PG_ADMIN_URL

    name = f"pawdex_plans_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    url = f"{base}/{name}"
    from pawdex.core.migrate import upgrade_to_head

    data = tmp_path_factory.mktemp("plans")
    settings = Settings(data_dir=data, database_url=url, broker_url=None)
    upgrade_to_head(settings)
    seed_catalog(url, 5000, Storage(settings.storage_dir), labelled=0.05)
    yield url
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize(
    "filters",
    [
        AnimalFilters(breed="golden_retriever", min_confidence=0.3),
        AnimalFilters(species="dog"),
        AnimalFilters(min_confidence=0.1, species="cat"),
    ],
    ids=["breed", "species", "species-low-confidence"],
)
@pytest.mark.parametrize("sort", list(AnimalSort))
def test_unlabelled_photos_are_an_anti_join_and_labelled_ones_a_join(catalogue, filters, sort):
    model_side, human_side = _plans(catalogue, filters, sort)
    assert "Anti" in _joins(model_side), model_side
    assert "Left" not in _joins(model_side) and "Left" not in _joins(human_side)
