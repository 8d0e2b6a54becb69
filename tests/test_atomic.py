"""Folders written atomically: a finished one replaces the old whole, a failed one leaves no trace."""

import pytest

from revise.atomic import atomic_folder


def test_a_finished_folder_replaces_the_old_one(tmp_path):
    dest = tmp_path / "model"
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    with atomic_folder(dest) as tmp:
        (tmp / "new.txt").write_text("new")
        assert (dest / "old.txt").is_file(), "the old folder stays until the new one is complete"
    assert [p.name for p in dest.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"], "nothing left beside it"


def test_a_failed_folder_leaves_the_old_one_and_nothing_else(tmp_path):
    dest = tmp_path / "sub" / "model"
    with atomic_folder(dest) as tmp:
        (tmp / "a.txt").write_text("a")
    with pytest.raises(RuntimeError):
        with atomic_folder(dest) as tmp:
            (tmp / "b.txt").write_text("b")
            raise RuntimeError("disk full halfway")
    assert [p.name for p in dest.iterdir()] == ["a.txt"]
    assert [p.name for p in dest.parent.iterdir()] == ["model"]
