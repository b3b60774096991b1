"""Task directories (hyperqueue.worker.taskdirs): a new empty directory per task under a name no
other task got, gone from its path after the task; emptied ones are renamed into a pool instead
of being removed (an rmdir can cost milliseconds on some file systems)."""

from __future__ import annotations

import os

from hyperqueue.worker.taskdirs import MAX_KEPT, POOL, TaskDirs


def test_each_task_gets_a_new_empty_directory_and_its_path_is_gone_after(tmp_path):
    dirs = TaskDirs(str(tmp_path))
    seen = set()
    for i in range(5):
        d = dirs.take()
        assert os.path.isdir(d) and os.listdir(d) == [], "not empty"
        assert os.path.dirname(d) == str(tmp_path)
        assert d not in seen, "a path given to two tasks"
        seen.add(d)
        with open(os.path.join(d, "hq-error"), "w") as f:  # what a task leaves
            f.write(f"task {i}")
        os.symlink("/etc", os.path.join(d, "link"))
        dirs.give_back(d)
        assert not os.path.exists(d)
    assert len(dirs.kept) == 1  # one directory served all five
    assert os.listdir(os.path.join(tmp_path, POOL)) == [os.path.basename(dirs.kept[0])]
    dirs.close()
    assert sorted(os.listdir(tmp_path)) == []


def test_a_directory_the_task_changed_is_removed_not_kept(tmp_path):
    dirs = TaskDirs(str(tmp_path))
    a = dirs.take()
    os.makedirs(os.path.join(a, "sub", "deeper"))
    dirs.give_back(a)
    b = dirs.take()
    os.chmod(b, 0o755)
    dirs.give_back(b)
    c = dirs.take()
    os.rmdir(c)  # gone already
    dirs.give_back(c)
    assert not any(os.path.exists(p) for p in (a, b, c))
    assert dirs.kept == []
    assert os.listdir(tmp_path) == []


def test_at_most_max_kept_are_pooled(tmp_path):
    dirs = TaskDirs(str(tmp_path))
    taken = [dirs.take() for _ in range(MAX_KEPT + 3)]
    for d in taken:
        dirs.give_back(d)
    assert len(dirs.kept) == MAX_KEPT
    assert len(os.listdir(os.path.join(tmp_path, POOL))) == MAX_KEPT
    assert [p for p in os.listdir(tmp_path) if p != POOL] == []
    dirs.close()
    assert os.listdir(tmp_path) == []
