"""The catalogue's queries keep the plans that make them fast at any size, checked with
EXPLAIN on PostgreSQL (no timing), with people's labels present: every list is one range scan
of a prediction index already in the page's order, stopped after the page (no sort of the
matches, no scan of the table). Filtering through the labels table instead took 270 ms at 1M
rows for a breed's labelled photos, and a left join whose filter PostgreSQL could not see
through sorted every image (150 ms at 100k rows)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, event
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from bench.run import seed_catalog
from pawdex.core.catalog import PhotoFilters, PhotoSort, list_photos
from pawdex.core.models import LabelSource
from pawdex.core.settings import Settings
from pawdex.core.storage import Storage

pytestmark = pytest.mark.integration


def _plans(url: str, filters: PhotoFilters, sort: PhotoSort) -> list[dict]:
    """The JSON plans of the statements ``list_photos`` runs over the images."""
    engine = create_engine(url, poolclass=NullPool)
    captured: list[tuple[str, object]] = []
    event.listen(
        engine, "before_cursor_execute",
        lambda _c, _cur, statement, params, _ctx, _many: captured.append((statement, params)),
    )  # fmt: skip
    try:
        with Session(engine) as session:
            list_photos(session, filters, sort, limit=50)
        plans = []
        with engine.connect() as conn:
            for statement, params in list(captured):  # (the EXPLAINs are captured too)
                if "FROM images" in statement:
                    row = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, params)
                    plans.append(json.loads(json.dumps(row.scalar()))[0]["Plan"])
        return plans
    finally:
        engine.dispose()


def _nodes(plan: dict) -> list[dict]:
    return [plan] + [node for child in plan.get("Plans", []) for node in _nodes(child)]


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
        PhotoFilters(breed="golden_retriever", min_confidence=0.3),
        PhotoFilters(species="dog"),
        PhotoFilters(min_confidence=0.1, species="cat"),
        PhotoFilters(label_source=LabelSource.human),
        PhotoFilters(label_source=LabelSource.model, breed="golden_retriever"),
        PhotoFilters(),
    ],
    ids=["breed", "species", "species-low-confidence", "labelled", "unlabelled-breed", "all"],
)
@pytest.mark.parametrize("sort", list(PhotoSort))
def test_every_list_is_one_ordered_index_scan_of_predictions(catalogue, filters, sort):
    (plan,) = _plans(catalogue, filters, sort)
    # The page's ids: a Limit over one scan of a catalogue index, from the index alone.
    (page,) = [n for n in _nodes(plan) if n["Node Type"] == "Limit"]
    nodes = _nodes(page)
    assert not [n for n in nodes if n["Node Type"] in ("Sort", "Incremental Sort")], page
    (scan,) = [n for n in nodes if n.get("Relation Name") == "predictions"]
    assert scan["Node Type"] == "Index Only Scan", page
    assert scan["Index Name"].startswith("ix_predictions_"), page
    # Then only the page's rows are read: by key, nothing scanned in order or whole.
    for node in _nodes(plan):
        if node.get("Relation Name") and node not in nodes:
            assert node["Node Type"] == "Index Scan" and "Index Cond" in node, node


def test_breed_tallies_kept_by_the_triggers_equal_counting(catalogue):
    """PostgreSQL's statement-level triggers (COPY, a batch INSERT, UPDATE, DELETE) keep
    /v1/breeds' tallies equal to counting the predictions, folded or not. Runs last: it
    changes the catalogue."""
    from sqlalchemy import delete, func, select, update

    from pawdex.core.catalog import breed_counts, fold_breed_tallies
    from pawdex.core.labels import show_labels
    from pawdex.core.models import Label, Prediction

    engine = create_engine(catalogue, poolclass=NullPool)

    def counted(session: Session) -> list[tuple[str, int]]:
        rows = session.execute(
            select(Prediction.catalog_breed, func.count())
            .where(Prediction.catalog_breed.is_not(None))
            .group_by(Prediction.catalog_breed)
        ).all()
        return sorted(((b, n) for b, n in rows), key=lambda r: (-r[1], r[0]))

    try:
        with Session(engine) as session, session.begin():
            assert breed_counts(session) == counted(session)  # the seed's COPY
            # People relabel 40 photos as pugs, then 10 of those labels are withdrawn.
            ids = list(session.scalars(select(Prediction.image_id).limit(40)))
            session.execute(update(Label).where(Label.image_id.in_(ids)).values(current=False))
            for image_id in ids:
                session.add(Label(image_id=image_id, species="dog", breed="pug", key_name="t"))
            session.flush()
            show_labels(session, ids)
            assert breed_counts(session) == counted(session)
            session.execute(update(Label).where(Label.image_id.in_(ids[:10])).values(current=False))
            show_labels(session, ids[:10])
            session.execute(delete(Prediction).where(Prediction.image_id.in_(ids[-5:])))
            assert breed_counts(session) == counted(session)
            assert fold_breed_tallies(session, limit=3) == 3
            assert breed_counts(session) == counted(session)
            fold_breed_tallies(session)
            assert breed_counts(session) == counted(session)
    finally:
        engine.dispose()
