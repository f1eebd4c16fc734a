"""The embedded broker writes each message under a name no worker takes, then renames it."""

from __future__ import annotations

import json

from kombu import Connection

import core.fs_transport  # noqa: F401  registers the alias


def test_messages_appear_whole_and_half_written_files_are_ignored(tmp_path):
    options = {"data_folder_in": str(tmp_path), "data_folder_out": str(tmp_path)}
    with Connection("pawdexfs://", transport_options=options) as conn:
        queue = conn.SimpleQueue("inference")
        (tmp_path / "1_half.inference.msg.part").write_bytes(b'{"bo')  # a write in progress
        queue.put({"job": "a"})
        names = sorted(p.name for p in tmp_path.iterdir())
        assert [n for n in names if n.endswith(".inference.msg")] and len(names) == 2
        message = queue.get(timeout=2)
        assert message.payload == {"job": "a"}
        message.ack()
        assert queue.qsize() == 0  # the .part file is not a message
        queue.close()
    written = [p for p in tmp_path.iterdir() if p.name.endswith(".msg")]
    assert written == []  # taken by the consumer
    assert json.loads((tmp_path / "1_half.inference.msg.part").read_bytes() + b'dy": 1}')
