"""The memory a run may use: the machine's, or a cgroup's limit when lower (v1 and v2)."""

from mnist_classifier import resources


def test_a_cgroup_limit_less_its_usage_is_the_room(tmp_path, monkeypatch):
    v2 = tmp_path / "v2"
    (v2 / "job").mkdir(parents=True)
    (v2 / "job" / "memory.max").write_text("1000000\n")
    (v2 / "job" / "memory.current").write_text("250000\n")
    (v2 / "memory.max").write_text("max\n")  # the root: no limit
    (v2 / "memory.current").write_text("5\n")
    membership = tmp_path / "cgroup"
    membership.write_text("0::/job\n")
    monkeypatch.setattr(resources, "CGROUP_ROOT", v2)
    assert resources._cgroup_room(membership) == 750000

    v1 = tmp_path / "v1"
    (v1 / "memory" / "a" / "b").mkdir(parents=True)
    (v1 / "memory" / "a" / "memory.limit_in_bytes").write_text("400000")  # the parent's limit is tighter
    (v1 / "memory" / "a" / "memory.usage_in_bytes").write_text("100000")
    (v1 / "memory" / "a" / "b" / "memory.limit_in_bytes").write_text("9223372036854771712")
    (v1 / "memory" / "a" / "b" / "memory.usage_in_bytes").write_text("100000")
    membership.write_text("4:memory:/a/b\n3:cpu:/\n")
    monkeypatch.setattr(resources, "CGROUP_ROOT", v1)
    assert resources._cgroup_room(membership) == 300000
    membership.write_text("3:cpu:/\n")
    assert resources._cgroup_room(membership) is None


def test_available_memory_is_positive_and_at_most_the_machine():
    assert 0 < resources.available_memory() <= resources._machine_available()
