"""Checkpoints: saved atomically in the stream's directory, read back after a restart, ignored when damaged."""

from __future__ import annotations

from pathlib import Path

from edgewise.runtime.streams.export import Checkpoint, CheckpointFile, ExportConfig, ExportKind

CONFIG = ExportConfig(ExportKind.KINESIS, "k", "trucks", 500)


async def test_a_saved_checkpoint_is_read_back_by_a_new_file_object(tmp_path: Path) -> None:
    checkpoint = Checkpoint(
        last_sequence_number=41, exported_messages=42, exported_bytes=420, last_export_time=7
    )
    await CheckpointFile(tmp_path, CONFIG).save(checkpoint)

    assert await CheckpointFile(tmp_path, CONFIG).load() == checkpoint
    assert await CheckpointFile(tmp_path, ExportConfig(ExportKind.KINESIS, "other", "t")).load() is None
    assert [p.name for p in (tmp_path / "exports").iterdir()] == [CheckpointFile(tmp_path, CONFIG).path.name]  # type: ignore[union-attr]


async def test_a_damaged_checkpoint_starts_the_export_over(tmp_path: Path) -> None:
    file = CheckpointFile(tmp_path, CONFIG)
    await file.save(Checkpoint(last_sequence_number=3))
    assert file.path is not None
    for damage in (b"{", b'{"last_sequence_number": "3"}', b'{"other": 1}', b"[" * 5000):
        file.path.write_bytes(damage)
        assert await file.load() is None


async def test_a_memory_stream_keeps_its_checkpoint_in_memory() -> None:
    file = CheckpointFile(None, CONFIG)
    assert await file.load() is None
    await file.save(Checkpoint(last_sequence_number=5))
    assert await file.load() == Checkpoint(last_sequence_number=5)
