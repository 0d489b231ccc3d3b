"""What the machine lets this run use: memory, counting a container's or job's limit."""

from __future__ import annotations

import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def available_memory() -> int:
    """Bytes this process may still allocate: the free memory of the machine (MemAvailable), or less
    where a cgroup (a container, a job scheduler) limits the process."""
    return min(_machine_available(), _cgroup_room() or 2**63)


def _machine_available() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _cgroup_room(membership: Path = Path("/proc/self/cgroup")) -> int | None:
    """The tightest cgroup limit over this process's cgroup and its parents, less what it uses now
    (cgroup v2 ``memory.max``, v1 ``memory.limit_in_bytes``); None without one."""
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        return None
    rooms = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2
            rooms += _rooms(CGROUP_ROOT, path, "memory.max", "memory.current")
        elif "memory" in controllers.split(","):
            rooms += _rooms(CGROUP_ROOT / "memory", path, "memory.limit_in_bytes", "memory.usage_in_bytes")
    return min(rooms) if rooms else None


def _rooms(mount: Path, path: str, limit_name: str, usage_name: str) -> list[int]:
    # Inside a container the mount may show the process's own cgroup as its root: try the cgroup's
    # path and each of its parents, as far as they exist under the mount.
    rooms, parts = [], [p for p in path.strip("/").split("/") if p]
    for depth in range(len(parts), -1, -1):
        folder = mount.joinpath(*parts[:depth])
        try:
            limit = (folder / limit_name).read_text().strip()
            usage = int((folder / usage_name).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:
            rooms.append(max(int(limit) - usage, 0))
    return rooms
