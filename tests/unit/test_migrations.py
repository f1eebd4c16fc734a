"""The ORM models and the Alembic head describe the same schema."""

import json

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from pawdex.core.db import get_engine
from pawdex.core.models import Base


def schema_diff(engine) -> list:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)


def insert_photo(conn, image_id: int) -> None:
    """A photo row as any revision since the first has it (a test of a migration's data)."""
    from sqlalchemy import text

    conn.execute(
        text("INSERT INTO images (id, sha256, filename, path, format, size_bytes, width, height,"
             " stored_path, created_at) VALUES (:id, :sha, 'a.jpg', 'a/a.jpg', 'JPEG', 1, 1, 1,"
             " 'k', '2026-01-01')"),
        {"id": image_id, "sha": f"{image_id:064d}"},
    )  # fmt: skip


def test_sqlite_head_matches_models(embedded_settings):
    assert schema_diff(get_engine(embedded_settings)) == []


def test_every_revision_downgrades_and_upgrades_again(embedded_settings):
    from alembic import command

    from pawdex.core.migrate import alembic_config

    config = alembic_config(embedded_settings.resolved_database_url)
    command.downgrade(config, "base")
    command.upgrade(config, "head")
    assert schema_diff(get_engine(embedded_settings)) == []


def test_catalog_columns_show_existing_labels_after_upgrade(embedded_settings):
    """0008 fills what the catalogue shows from the predictions and current labels already
    stored: a labelled photo shows the person's verdict, the others the model's answer."""
    from alembic import command
    from sqlalchemy import text

    from pawdex.core.migrate import alembic_config

    config = alembic_config(embedded_settings.resolved_database_url)
    command.downgrade(config, "0007")
    engine = get_engine(embedded_settings)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO model_versions (id, version, name, active, details, created_at)"
                 " VALUES (1, 'm@1', 'm', 1, '{}', '2026-01-01')")
        )  # fmt: skip
        for i in (1, 2, 3):
            insert_photo(conn, i)
            conn.execute(
                text("INSERT INTO predictions (image_id, model_version_id, species, breed,"
                     " confidence, species_confidence, top_k, created_at) VALUES (:i, 1, 'dog',"
                     " 'pug', 0.9, 0.9, '[]', '2026-01-01')"),
                {"i": i},
            )  # fmt: skip
        labels = [(1, "dog", "beagle", 0), (1, "cat", None, 1), (2, "dog", "beagle", 0)]
        for image_id, species, breed, current in labels:
            conn.execute(
                text("INSERT INTO labels (image_id, species, breed, key_name, current,"
                     " created_at) VALUES (:i, :s, :b, 'k', :c, '2026-01-01')"),
                {"i": image_id, "s": species, "b": breed, "c": current},
            )  # fmt: skip
    command.upgrade(config, "head")
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT image_id, catalog_species, catalog_breed, labelled FROM predictions"
                 " ORDER BY image_id")
        ).all()  # fmt: skip
    # 1: its current label (a cat); 2: only an outdated label, so the model's; 3: unlabelled.
    assert [tuple(r) for r in rows] == [
        (1, "cat", None, 1), (2, "dog", "pug", 0), (3, "dog", "pug", 0),
    ]  # fmt: skip


def test_jobs_recorded_before_names_get_the_names_new_jobs_would(embedded_settings):
    from alembic import command
    from sqlalchemy import text

    from pawdex.core.migrate import alembic_config

    config = alembic_config(embedded_settings.resolved_database_url)
    command.downgrade(config, "0010")
    engine = get_engine(embedded_settings)
    jobs = [
        ("a", "archive", '[{"name": "kennel.zip", "spool": "x/0"}]', None),
        ("b", "images", '[{"name": "rex.jpg"}, {"name": "mia.jpg"}, {"name": "bo.jpg"}]', None),
        ("c", "reindex", '[{"model_version": "m@1", "all": false}]', "re-index with m@1"),
        ("d", "images", "[]", None),
    ]
    with engine.begin() as conn:
        for job_id, kind, source, message in jobs:
            conn.execute(
                text("INSERT INTO jobs (id, kind, status, source, total, done, failed,"
                     " duplicates, ingest_position, ingest_done, created_at, message)"
                     " VALUES (:id, :kind, 'succeeded', :source, 0, 0, 0, 0, 0, 1,"
                     " '2026-01-01', :message)"),
                {"id": job_id, "kind": kind, "source": source, "message": message},
            )  # fmt: skip
    command.upgrade(config, "head")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, name, origin FROM jobs ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [
        ("a", "kennel.zip", "upload"), ("b", "rex.jpg and 2 more", "upload"),
        ("c", "re-index with m@1", "admin"), ("d", "images", "upload"),
    ]  # fmt: skip


def test_photos_indexed_before_animals_are_each_their_own_animal(embedded_settings):
    from alembic import command
    from sqlalchemy import text

    from pawdex.core.migrate import alembic_config

    config = alembic_config(embedded_settings.resolved_database_url)
    command.downgrade(config, "0013")
    engine = get_engine(embedded_settings)
    with engine.begin() as conn:
        for image_id in (3, 7):
            insert_photo(conn, image_id)
    command.upgrade(config, "head")
    with engine.begin() as conn:
        rows = conn.execute(text("SELECT id, animal_id FROM images ORDER BY id")).all()
        assert [tuple(r) for r in rows] == [(3, 3), (7, 7)]
        conn.execute(text("INSERT INTO animals (created_at) VALUES ('2026-01-02')"))
        assert conn.execute(text("SELECT max(id) FROM animals")).scalar() == 8


def test_breed_candidates_are_backfilled_from_top_k_and_kept_by_the_triggers(embedded_settings):
    from alembic import command
    from sqlalchemy import text

    from pawdex.core.migrate import alembic_config

    config = alembic_config(embedded_settings.resolved_database_url)
    command.downgrade(config, "0015")
    engine = get_engine(embedded_settings)
    top_k = '[{"breed": "pug", "confidence": 0.7}, {"breed": "beagle", "confidence": 0.2}]'
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO model_versions (id, version, name, active, details,"
                " created_at) VALUES (1, 'm@1', 'm', 1, '{}', '2026-01-01')"
            )
        )
        insert_photo(conn, 5)
        conn.execute(text("INSERT INTO predictions (id, image_id, model_version_id, species,"
                          " breed, confidence, species_confidence, top_k, created_at,"
                          " catalog_species, catalog_breed, labelled) VALUES (9, 5, 1, 'dog',"
                          " 'pug', 0.7, 0.99, :top_k, '2026-01-01', 'dog', 'pug', 0)"),
                     {"top_k": top_k})  # fmt: skip
    command.upgrade(config, "head")

    def candidates(conn) -> list[tuple]:
        rows = conn.execute(
            text(
                "SELECT prediction_id, breed, model_version_id, image_id,"
                " confidence FROM breed_candidates ORDER BY confidence DESC"
            )
        )
        return [tuple(r) for r in rows]

    with engine.begin() as conn:
        assert candidates(conn) == [(9, "pug", 1, 5, 0.7), (9, "beagle", 1, 5, 0.2)]
        # A reindex rewrites top_k: the candidates follow; a label's update leaves them.
        conn.execute(
            text(
                """UPDATE predictions SET top_k = '[{"breed": "chow", """
                """"confidence": 0.9}]' WHERE id = 9"""
            )
        )
        conn.execute(text("UPDATE predictions SET catalog_breed = 'chow' WHERE id = 9"))
        assert candidates(conn) == [(9, "chow", 1, 5, 0.9)]
        conn.execute(text("DELETE FROM predictions WHERE id = 9"))
        assert candidates(conn) == []


def test_labels_from_before_mixes_name_their_one_breed(embedded_settings):
    """0015 gives each earlier dog label its breed as the list of parents, no mix."""
    from alembic import command
    from sqlalchemy import text

    from pawdex.core.migrate import alembic_config

    config = alembic_config(embedded_settings.resolved_database_url)
    command.downgrade(config, "0014")
    engine = get_engine(embedded_settings)
    with engine.begin() as conn:
        insert_photo(conn, 1)
        for species, breed in [("dog", "beagle"), ("cat", None)]:
            conn.execute(
                text("INSERT INTO labels (image_id, species, breed, key_name, current,"
                     " created_at) VALUES (1, :s, :b, 'k', 0, '2026-01-01')"),
                {"s": species, "b": breed},
            )  # fmt: skip
    command.upgrade(config, "head")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT species, breeds, mix FROM labels ORDER BY id")).all()
    assert [(s, json.loads(b), bool(m)) for s, b, m in rows] == [
        ("dog", ["beagle"], False), ("cat", [], False),
    ]  # fmt: skip


def test_trashed_predictions_of_purged_jobs_lose_the_job_on_upgrade(embedded_settings):
    """0020 unsets the job a purge left behind on predictions in the trash (their photos
    could not be restored), keeps the others, then the database keeps it so."""
    from alembic import command
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    from pawdex.core.migrate import alembic_config
    from pawdex.core.models import Job, JobKind

    config = alembic_config(embedded_settings.resolved_database_url)
    command.downgrade(config, "0019")
    engine = get_engine(embedded_settings)
    with engine.begin() as conn:
        insert_photo(conn, 1)
    with Session(engine) as session, session.begin():  # the jobs table is as at head
        session.add(Job(id="kept", kind=JobKind.archive, source=[]))
    with engine.begin() as conn:
        for job in ("kept", "purged"):
            conn.execute(
                text("INSERT INTO trashed_predictions (image_id, model_version_id, job_id,"
                     " species, confidence, species_confidence, top_k, created_at,"
                     " catalog_species, labelled) VALUES (1, 1, :job, 'dog', 0.5, 0.9, '[]',"
                     " '2026-01-01', 'dog', 0)"),
                {"job": job},
            )  # fmt: skip
    command.upgrade(config, "head")
    with engine.begin() as conn:
        jobs = conn.scalars(text("SELECT job_id FROM trashed_predictions ORDER BY id")).all()
        assert jobs == ["kept", None]
        conn.execute(text("DELETE FROM jobs WHERE id = 'kept'"))
        assert conn.scalars(text("SELECT job_id FROM trashed_predictions")).all() == [None, None]
