"""The embedded broker writes each message under a name no worker takes, then renames it."""

from __future__ import annotations

import json
import uuid

from kombu import Connection

import pawdex.core.fs_transport  # noqa: F401  registers the alias


def test_messages_appear_whole_and_half_written_files_are_ignored(tmp_path):
    # Hermetic: kombu's filesystem transport keeps exchange bindings in files (a folder of
    # the working directory unless told otherwise) and in the process; a queue name of its
    # own and a control folder in tmp keep other runs' bindings out of this one.
    name = f"q{uuid.uuid4().hex[:8]}"
    options = {
        "data_folder_in": str(tmp_path),
        "data_folder_out": str(tmp_path),
        "control_folder": str(tmp_path / "control"),  # kombu's default is ./control
    }
    with Connection("pawdexfs://", transport_options=options) as conn:
        queue = conn.SimpleQueue(name)
        (tmp_path / f"1_half.{name}.msg.part").write_bytes(b'{"bo')  # a write in progress
        queue.put({"job": "a"})
        names = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
        assert [n for n in names if n.endswith(f".{name}.msg")] and len(names) == 2, names
        message = queue.get(timeout=2)
        assert message.payload == {"job": "a"}
        message.ack()
        assert queue.qsize() == 0  # the .part file is not a message
        queue.close()
    written = [p for p in tmp_path.iterdir() if p.name.endswith(".msg")]
    assert written == []  # taken by the consumer
    assert json.loads((tmp_path / f"1_half.{name}.msg.part").read_bytes() + b'dy": 1}')
