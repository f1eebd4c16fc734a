"""``pawdex`` with faults injected, for the crash tests:
``python -m tests.integration.faulty_worker worker --queues …``.

Test-only knobs, read from the environment of that process:

* ``PAWDEX_TEST_POISON``: bytes that, found in a photo that ingest reads or that classify
  decodes for the model, kill the worker on the spot (``os._exit``, as a segfault would).
* ``PAWDEX_TEST_HANG``: bytes that, found in a photo that classify decodes, make the worker
  hang there (for ever): it is in the middle of a batch when the test kills it.
* ``PAWDEX_TEST_INGEST_DELAY``: seconds added to each ingest batch, for the same reason.
* ``PAWDEX_TEST_CLASSIFY_DELAY``: seconds added to each photo classify decodes: the job is
  still classifying when the test cuts the database off.
"""

from __future__ import annotations

import os
import sys
import time

POISON = os.environ.get("PAWDEX_TEST_POISON", "").encode()
HANG = os.environ.get("PAWDEX_TEST_HANG", "").encode()
INGEST_DELAY = float(os.environ.get("PAWDEX_TEST_INGEST_DELAY", "0"))
CLASSIFY_DELAY = float(os.environ.get("PAWDEX_TEST_CLASSIFY_DELAY", "0"))


def patch_classify() -> None:
    from pawdex.worker import classify

    real_model_input = classify.model_input

    def model_input(row, storage, resize_size):
        data = storage.read(row.stored_path)
        if POISON and POISON in data:
            os._exit(70)
        if HANG and HANG in data:
            time.sleep(3600)
        time.sleep(CLASSIFY_DELAY)
        return real_model_input(row, storage, resize_size)

    classify.model_input = model_input


def patch_ingest() -> None:
    from pawdex.worker import ingest

    real_decode_and_store = ingest._decode_and_store
    real_commit_batch = ingest._commit_batch

    def decode_and_store(item, *args, **kwargs):
        if POISON and POISON in (item.entry.data or b""):
            os._exit(70)
        return real_decode_and_store(item, *args, **kwargs)

    def commit_batch(*args, **kwargs):
        time.sleep(INGEST_DELAY)
        return real_commit_batch(*args, **kwargs)

    ingest._decode_and_store = decode_and_store
    ingest._commit_batch = commit_batch


if __name__ == "__main__":
    from pawdex.cli import app

    queues = sys.argv[sys.argv.index("--queues") + 1].split(",")
    if "inference" in queues:  # only an inference worker imports torch
        patch_classify()
    if "ingest" in queues:
        patch_ingest()
    app(prog_name="pawdex")
