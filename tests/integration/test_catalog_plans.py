"""The catalogue's queries keep the plans that make them fast at any size, checked with
EXPLAIN on PostgreSQL (no timing), with people's labels present: every list is one range scan
of a prediction index already in the page's order, stopped after the page (no sort of the
matches, no scan of the table). Filtering through the labels table instead took 270 ms at 1M
rows for a breed's labelled photos, and a left join whose filter PostgreSQL could not see
through sorted every image (150 ms at 100k rows)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, event
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from bench.run import seed_catalog
from pawdex.core.catalog import PhotoFilters, PhotoSort, count_photos, list_photos
from pawdex.core.models import LabelSource
from pawdex.core.settings import Settings
from pawdex.core.storage import LocalStorage

pytestmark = pytest.mark.integration


def _explain(
    url: str, run: Callable[[Session], object], keep: Callable[[str], bool], analyze=False
) -> list:
    """The JSON plans of the statements ``run`` sends that ``keep`` selects (``analyze``:
    run them, for the rows each node really read)."""
    engine = create_engine(url, poolclass=NullPool)
    captured: list[tuple[str, object]] = []
    event.listen(
        engine, "before_cursor_execute",
        lambda _c, _cur, statement, params, _ctx, _many: captured.append((statement, params)),
    )  # fmt: skip
    try:
        with Session(engine) as session:
            run(session)
        plans = []
        with engine.connect() as conn:
            for statement, params in [c for c in captured if keep(c[0])]:  # (not the EXPLAINs)
                options = "ANALYZE, FORMAT JSON" if analyze else "FORMAT JSON"
                row = conn.exec_driver_sql(f"EXPLAIN ({options}) " + statement, params)
                plans.append(json.loads(json.dumps(row.scalar()))[0]["Plan"])
        return plans
    finally:
        engine.dispose()


def _plans(url: str, filters: PhotoFilters, sort: PhotoSort) -> list[dict]:
    """The JSON plans of the statements ``list_photos`` runs over the images."""
    return _explain(
        url, lambda session: list_photos(session, filters, sort, limit=50),
        lambda statement: "FROM images" in statement,
    )  # fmt: skip


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
    seed_catalog(url, 5000, LocalStorage(settings.storage_dir), labelled=0.05)
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


def _scans(plan: dict, relation: str) -> list[dict]:
    return [n for n in _nodes(plan) if n.get("Relation Name") == relation]


def _page_scan(plan: dict, relation: str, index: str) -> dict:
    """The page's ids: a Limit over one scan of ``index``, from the index alone, no sort."""
    (page,) = [n for n in _nodes(plan) if n["Node Type"] == "Limit"]
    assert not [n for n in _nodes(page) if n["Node Type"] in ("Sort", "Incremental Sort")], page
    (scan,) = _scans(page, relation)
    assert (scan["Node Type"], scan["Index Name"]) == ("Index Only Scan", index), page
    return page


def _count_plan(url: str, filters: PhotoFilters, sort: PhotoSort) -> dict:
    """The JSON plan of ``count_photos``' statement."""
    return _explain(
        url, lambda session: count_photos(session, filters, sort),
        lambda statement: "count(*)" in statement,
    )[-1]  # fmt: skip


MIGHT_BE = PhotoFilters(might_be="golden_retriever", might_be_min=0.05)


def test_might_be_is_one_ordered_index_scan_of_the_breed_candidates(catalogue):
    (plan,) = _plans(catalogue, MIGHT_BE, PhotoSort.confidence_desc)
    page = _page_scan(plan, "breed_candidates", "ix_breed_candidates_model_breed_conf")
    assert not _scans(page, "predictions")  # nothing else to filter: no join
    count = _count_plan(catalogue, MIGHT_BE, PhotoSort.confidence_desc)
    _page_scan(count, "breed_candidates", "ix_breed_candidates_model_breed_conf")


def test_might_be_with_other_filters_reads_each_candidates_prediction_by_key(catalogue):
    filters = PhotoFilters(might_be="golden_retriever", species="dog", path_prefix="2019/")
    (plan,) = _plans(catalogue, filters, PhotoSort.confidence_desc)
    page = _page_scan(plan, "breed_candidates", "ix_breed_candidates_model_breed_conf")
    for node in _nodes(page):
        if node.get("Relation Name") in ("predictions", "images"):
            assert node["Node Type"] in ("Index Scan", "Index Only Scan"), node
            assert "Index Cond" in node, node


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        (PhotoFilters(max_confidence=0.5, label_source=LabelSource.model,
                      hide_not_dogs_from=0.9), "ix_predictions_model_conf"),
        (PhotoFilters(indexed_after=datetime(2000, 1, 1, tzinfo=UTC),
                      indexed_before=datetime(2100, 1, 1, tzinfo=UTC)),
         "ix_predictions_model_conf"),
    ],
    ids=["review-without-not-dogs", "indexed-between"],
)  # fmt: skip
def test_review_and_dates_walk_the_confidence_index_alone(catalogue, filters, index):
    (plan,) = _plans(catalogue, filters, PhotoSort.confidence_asc)
    _page_scan(plan, "predictions", index)
    _page_scan(_count_plan(catalogue, filters, PhotoSort.confidence_asc), "predictions", index)


@pytest.mark.parametrize("sort", list(PhotoSort))
def test_every_count_walks_the_pages_index_alone(catalogue, sort):
    for filters in (PhotoFilters(species="dog"), PhotoFilters(), PhotoFilters(breed="pug")):
        (plan,) = _plans(catalogue, filters, sort)
        (scan,) = _scans(plan, "predictions")[:1]
        count = _count_plan(catalogue, filters, sort)
        _page_scan(count, "predictions", scan["Index Name"])


@pytest.fixture(scope="module")
def jobs_with_errors(catalogue) -> list[str]:
    """A job with 20,000 per-file errors, one with 3 and one with none, from two days ago."""
    from sqlalchemy import text

    from pawdex.core.models import Job, JobKind

    engine = create_engine(catalogue, poolclass=NullPool)
    with Session(engine) as session:
        jobs = [Job(kind=JobKind.archive, name=f"errors {n}") for n in (20_000, 3, 0)]
        session.add_all(jobs)
        session.flush()
        for job, n in zip(jobs, (20_000, 3, 0), strict=True):
            session.execute(
                text("INSERT INTO job_errors (job_id, name, error, created_at) SELECT :job, "
                     "'scans/' || i || '.jpg', 'not an image', now() - interval '2 days' "
                     "FROM generate_series(1, :n) AS i"),
                {"job": job.id, "n": n},
            )  # fmt: skip
        session.commit()
        session.execute(text("ANALYZE job_errors"))  # as autovacuum would after such a load
        session.commit()
        ids = [job.id for job in jobs]
    engine.dispose()
    return ids


def test_a_jobs_first_errors_read_a_few_index_entries_however_many_it_has(
    catalogue, jobs_with_errors
):
    from pawdex.core.jobs import ERRORS_SHOWN, first_errors, job_errors

    found = {}
    (plan,) = _explain(
        catalogue, lambda session: found.update(first_errors(session, jobs_with_errors)),
        lambda statement: "FROM job_errors" in statement, analyze=True,
    )  # fmt: skip
    assert [len(found[j]) for j in jobs_with_errors] == [ERRORS_SHOWN, 3, 0]
    scans = _scans(plan, "job_errors")
    assert scans and all("Index" in s["Node Type"] for s in scans), plan
    read = sum((s["Actual Rows"] + s.get("Rows Removed by Filter", 0)) * s["Actual Loops"]
               for s in scans)  # fmt: skip
    assert read <= 2 * (ERRORS_SHOWN + 3), plan  # each shown error twice, not the 20,000

    for job_id in jobs_with_errors:  # a page of a job's errors: read in order, stopped
        (page,) = _explain(
            catalogue, lambda session, job_id=job_id: job_errors(session, job_id, 100, None),
            lambda statement: "FROM job_errors" in statement, analyze=True,
        )  # fmt: skip
        assert not [n for n in _nodes(page) if n["Node Type"] in ("Sort", "Incremental Sort")]
        (scan,) = _scans(page, "job_errors")
        assert "Index" in scan["Node Type"], page
        assert scan["Actual Rows"] + scan.get("Rows Removed by Filter", 0) <= 101, page


def test_the_dashboards_errors_of_the_last_hour_are_counted_from_the_index(
    catalogue, jobs_with_errors
):
    from datetime import timedelta

    from pawdex.core.models import utcnow
    from pawdex.core.monitoring import failures_since

    counted = []
    (plan,) = _explain(
        catalogue,
        lambda session: counted.append(failures_since(session, utcnow() - timedelta(hours=1))),
        lambda statement: "FROM job_errors" in statement,
        analyze=True,
    )
    assert counted == [0]  # the 20,003 errors are two days old
    (scan,) = _scans(plan, "job_errors")
    assert scan["Index Name"] == "ix_job_errors_created_at", plan
    assert scan["Actual Rows"] + scan.get("Rows Removed by Filter", 0) == 0, plan


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
