"""What the machine lets this run use: memory, counting a container's or job's limit."""

from __future__ import annotations

import os
import resource
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


# Each process limit and the size in /proc/self/status it bounds: past it, malloc itself fails
# ("DefaultCPUAllocator: can't allocate memory") however much memory the machine has free.
RLIMITS = {"RLIMIT_AS": "VmSize", "RLIMIT_DATA": "VmData"}  # ulimit -v, ulimit -d (prlimit, batch systems)


def available_memory() -> int:
    """Bytes this process may still allocate: the free memory of the machine (MemAvailable), or less
    where a cgroup (a container, a job scheduler) or a process limit (``ulimit -v``) holds it."""
    return min(_machine_available(), _cgroup_room() or 2**63, _rlimit_room() or 2**63)


def _rlimit_room() -> int | None:
    """The tightest of the process's address-space and data limits, less what it uses of each; None
    without one."""
    rooms, sizes = [], None
    for limit_name, size_name in RLIMITS.items():
        which = getattr(resource, limit_name, None)
        soft = resource.getrlimit(which)[0] if which is not None else resource.RLIM_INFINITY
        if soft == resource.RLIM_INFINITY:
            continue
        sizes = sizes if sizes is not None else _process_sizes()
        rooms.append(max(soft - sizes.get(size_name, 0), 0))
    return min(rooms) if rooms else None


def _process_sizes() -> dict[str, int]:
    """This process's sizes from /proc/self/status (VmSize, VmData, ...), in bytes; empty where unreadable."""
    sizes = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if value.strip().endswith(" kB"):
                sizes[name] = int(value.split()[0]) * 1024
    except (OSError, ValueError):
        pass
    return sizes


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
