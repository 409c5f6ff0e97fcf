"""``checkpoints/last``: a relative link to the newest checkpoint, replaced atomically; a real
directory in its place (a run copied with its links followed) is never deleted."""

import logging
import shutil

from embodied_mm.train.checkpoint import LAST, point_last


def test_last_is_relinked_to_each_new_checkpoint(tmp_path):
    for name in ("step-0000002", "step-0000004"):
        (tmp_path / name).mkdir()
        point_last(tmp_path, name)
        assert (tmp_path / LAST).readlink().as_posix() == name
    assert sorted(p.name for p in tmp_path.iterdir()) == [LAST, "step-0000002", "step-0000004"]


def test_a_copied_last_directory_is_kept_with_a_warning(tmp_path, caplog):
    run = tmp_path / "run"
    (run / "step-0000004" / "policy").mkdir(parents=True)
    (run / "step-0000004" / "policy" / "model.safetensors").write_bytes(b"weights")
    point_last(run, "step-0000004")
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)  # follows the link: copy/last is a real directory
    shutil.rmtree(copy / "step-0000004")  # last now holds the only copy of step 4
    (copy / "step-0000006").mkdir()
    with caplog.at_level(logging.WARNING):
        point_last(copy, "step-0000006")
    assert (copy / LAST / "policy" / "model.safetensors").read_bytes() == b"weights"
    assert not (copy / LAST).is_symlink()
    assert "is a directory, not a link" in caplog.text
    assert not list(copy.glob(".tmp-*"))
