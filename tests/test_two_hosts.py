"""Two "machines" on one box: two network namespaces joined by a veth pair, one torchrun agent in
each, meeting through the c10d rendezvous hosted by rank 0's; then the faults a real network has.

Needs root (``ip netns``, CAP_NET_ADMIN) and iproute2's ``ip`` and ``tc``; skipped, with the reason,
where a namespace cannot be made.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from mnist_classifier.inference.model_file import load_model
from mnist_classifier.training.checkpoint import load_checkpoint

from .conftest import beside, write_fake_mnist

ROOT = Path(__file__).resolve().parents[1]
SUBNET = "10.27.0"
RENDEZVOUS_PORT = 29400
# How long torchrun's agent waits on each operation of the rendezvous store (60 s by default): past a
# dead link, it makes several before it ends, each waiting that long.
RENDEZVOUS_READ_TIMEOUT_S = 5
DIST_TIMEOUT_S = 20
# After a fault, how long the hosts may take beyond --dist_timeout to end: rank 0 writes its files
# and the agents shut down (measured: docs/torchrun.md).
ENDING_S = 25
FLAGS = ["--gpu_id", "-1", "--amp", "off", "--seed", "0", "--batch_size", "16", "--hidden_sizes", "32",
         "--lr_schedule", "constant", "--checkpoint_every", "1", "--dist_timeout", str(DIST_TIMEOUT_S)]


@dataclass
class Host:
    """One "machine": a network namespace, its end of the link, its address and its own folder."""

    namespace: str
    interface: str
    address: str
    folder: Path

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.namespace, *command], capture_output=True, text=True,
                              check=check)

    def start(self, *command: str) -> subprocess.Popen:
        environment = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
                       "GLOO_SOCKET_IFNAME": self.interface}  # gloo would pick the box's hostname's address
        return subprocess.Popen(["ip", "netns", "exec", self.namespace, *command], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=environment)

    def kill_everything(self) -> None:
        """SIGKILL every process in the namespace: the machine is gone."""
        listed = subprocess.run(["ip", "netns", "pids", self.namespace], capture_output=True, text=True)
        for pid in listed.stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


def _ip(*arguments: str) -> None:
    subprocess.run(["ip", *arguments], capture_output=True, text=True, check=True)


def _why_no_namespaces() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root"
    missing = [tool for tool in ("ip", "tc") if shutil.which(tool) is None]
    return f"iproute2's {' and '.join(missing)} not found" if missing else None


@pytest.fixture
def hosts(tmp_path):
    """Hosts a (10.27.0.1, rank 0, the rendezvous) and b (10.27.0.2), each with its own copy of a
    small fake MNIST; the namespaces and whatever runs in them are removed afterwards, whatever happened."""
    reason = _why_no_namespaces()
    if reason:
        pytest.skip(reason)
    suffix = f"{os.getpid() % 100000}"
    made = []
    try:
        for name in "ab":
            _ip("netns", "add", f"mc27{name}{suffix}")
            made.append(f"mc27{name}{suffix}")
    except subprocess.CalledProcessError as e:
        for namespace in made:
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
        pytest.skip(f"cannot make a network namespace (CAP_NET_ADMIN?): {e.stderr.strip()}")
    pair = [Host(namespace, f"v27{name}{suffix}", f"{SUBNET}.{i + 1}", tmp_path / name)
            for i, (name, namespace) in enumerate(zip("ab", made, strict=True))]
    try:
        _ip("link", "add", pair[0].interface, "type", "veth", "peer", "name", pair[1].interface)
        for host in pair:
            _ip("link", "set", host.interface, "netns", host.namespace)
            host.run("ip", "addr", "add", f"{host.address}/24", "dev", host.interface)
            host.run("ip", "link", "set", host.interface, "up")
            host.run("ip", "link", "set", "lo", "up")
            # torchrun's agent waits on the rendezvous store over plain TCP; past a dead link, its
            # requests are resent for TCP's default 15 retries (about 15 minutes) before it gives up.
            # Five (about 13 s) is what a cluster of these machines would set (docs/torchrun.md).
            host.run("sysctl", "-w", "net.ipv4.tcp_retries2=5")
            write_fake_mnist(host.folder / "data", n_train=400, n_test=100)
        yield pair
    finally:
        for host in pair:
            host.kill_everything()
        for namespace in made:  # the veth pair goes with its namespaces
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)


def start_run(pair: list[Host], *flags: str) -> list[subprocess.Popen]:
    """The same training on both hosts (each with its own data folder and model path), one process each."""
    rendezvous = f"{pair[0].address}:{RENDEZVOUS_PORT}"
    return [host.start(sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
                       "--rdzv_backend=c10d", f"--rdzv_endpoint={rendezvous}", "--rdzv_id=two-hosts",
                       f"--rdzv_conf=is_host={host is pair[0]},read_timeout={RENDEZVOUS_READ_TIMEOUT_S}",
                       f"--local_addr={host.address}",
                       str(ROOT / "train.py"), *FLAGS, "--data_dir", str(host.folder / "data"),
                       "--model_fn", str(host.folder / "m.pth"), *flags)
            for host in pair]


def wait_for_line(stream, start: str) -> None:
    for line in stream:
        if line.startswith(start):
            return
    raise AssertionError(f"the run ended before printing {start!r}")


def wait_all(runs: list[subprocess.Popen], seconds: float) -> list[str]:
    """Each run's stderr once it ended; they are killed, and the test fails, after ``seconds``."""
    deadline = time.monotonic() + seconds
    errors = []
    try:
        for run in runs:
            errors.append(run.communicate(timeout=max(deadline - time.monotonic(), 0.1))[1])
    except subprocess.TimeoutExpired:
        for run in runs:
            run.kill()
        raise AssertionError(f"the hosts were still running {seconds:.0f} s later") from None
    return errors


def our_lines(errors: list[str]) -> list[str]:
    """What train.py said on stderr (the rest is torchrun's agent)."""
    return [line for err in errors for line in err.splitlines() if line.startswith("mnist-train:")]


def assert_no_traceback_of_ours(errors: list[str]) -> None:
    ours = (f'File "{ROOT / "mnist_classifier"}', f'File "{ROOT / "train.py"}')
    assert not any(frame in err for err in errors for frame in ours), errors


def assert_stopped_with_one_line_and_a_checkpoint(pair: list[Host], errors: list[str]) -> int:
    """Rank 0 said why in one line, without a traceback of ours, and kept the last completed epoch;
    the number of epochs it kept."""
    lines = our_lines(errors)
    assert "mnist-train: rank 0: another process of the run stopped or stopped answering" in lines[0], errors
    assert_no_traceback_of_ours(errors)
    _, saved = load_model(pair[0].folder / "m.pth")
    epochs = len(load_checkpoint(beside(pair[0].folder / "m.pth", "checkpoint"))["trainer"]["history"])
    assert epochs == len(saved["history"]) >= 2 and "another process" in saved["stopped"]
    assert not (pair[1].folder / "m.pth").exists()  # rank 1 writes nothing
    return epochs


def resume_on_one_host(host: Host, folder: Path, done: int) -> None:
    """The stopped run, resumed on ``host`` alone (world size 1) from rank 0's checkpoint in ``folder``
    (a shared folder, for another machine than rank 0's), finishes."""
    resumed = host.run(sys.executable, str(ROOT / "train.py"), "--resume", str(beside(folder / "m.pth", "checkpoint")),
                       "--n_epochs", str(done + 2), check=False)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Resuming after epoch {done}" in resumed.stdout
    _, saved = load_model(folder / "m.pth")
    assert len(saved["history"]) == done + 2 and saved["config"]["world_size"] == 1 and "stopped" not in saved


def test_a_run_across_two_hosts_finishes_as_on_one(hosts, tmp_path):
    loopback = tmp_path / "loopback"
    write_fake_mnist(loopback / "data", n_train=400, n_test=100)
    # The same run with both processes on one host, over loopback, started at the same time.
    reference = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                                  str(ROOT / "train.py"), *FLAGS, "--n_epochs", "3", "--data_dir",
                                  str(loopback / "data"), "--model_fn", str(loopback / "m.pth")],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    started = time.monotonic()
    runs = start_run(hosts, "--n_epochs", "3")
    errors = wait_all([*runs, reference], 120)
    print(f"clean run: {time.monotonic() - started:.1f} s")
    assert [run.returncode for run in (*runs, reference)] == [0, 0, 0], errors
    across, here = load_model(hosts[0].folder / "m.pth")[1], load_model(loopback / "m.pth")[1]
    # The same rows, the same ring of two: the same sums in the same order, over veth as over loopback.
    for name, value in here["model"].items():
        assert torch.equal(value, across["model"][name]), name
    assert [h["valid_loss"] for h in across["history"]] == [h["valid_loss"] for h in here["history"]]
    assert across["config"]["world_size"] == 2


@pytest.mark.parametrize("lost", ["b", "a"], ids=["rank 1's host", "rank 0's host"])
def test_a_killed_host_stops_the_run_in_one_line(hosts, lost):
    runs = start_run(hosts, "--n_epochs", "1000")
    wait_for_line(runs[0].stdout, "Epoch(2/")
    killed = hosts["ab".index(lost)]
    killed.kill_everything()
    lost_at = time.monotonic()
    survivor = runs[1 - "ab".index(lost)]
    errors = wait_all([survivor], DIST_TIMEOUT_S + ENDING_S)
    print(f"host {lost} killed: the other ended {time.monotonic() - lost_at:.1f} s later")
    assert survivor.returncode != 0
    if lost == "b":
        done = assert_stopped_with_one_line_and_a_checkpoint(hosts, errors)
        resume_on_one_host(hosts[0], hosts[0].folder, done)
        return
    # Rank 0's machine is gone, bar the checkpoint it wrote after each epoch (in a shared folder).
    # Rank 1 says so in one line, or, when its agent saw the rendezvous store go first and stopped
    # it (SIGTERM), not at all: the agent's report says it then.
    assert len(our_lines(errors)) <= 1 and all("rank 1: another process" in line for line in our_lines(errors))
    assert_no_traceback_of_ours(errors)
    done = len(load_checkpoint(beside(hosts[0].folder / "m.pth", "checkpoint"))["trainer"]["history"])
    assert done >= 1  # epoch 2's, unless the host died while writing it
    resume_on_one_host(hosts[1], hosts[0].folder, done)


def test_a_link_down_mid_epoch_stops_the_run_within_the_timeout(hosts):
    runs = start_run(hosts, "--n_epochs", "1000")
    wait_for_line(runs[0].stdout, "Epoch(2/")
    hosts[1].run("ip", "link", "set", hosts[1].interface, "down")
    down_at = time.monotonic()
    errors = wait_all(runs, DIST_TIMEOUT_S + ENDING_S)
    print(f"link down: ended {time.monotonic() - down_at:.1f} s later")
    done = assert_stopped_with_one_line_and_a_checkpoint(hosts, errors)
    assert "rank 1: another process of the run stopped or stopped answering" in "\n".join(our_lines(errors))
    resume_on_one_host(hosts[0], hosts[0].folder, done)


def test_a_slow_lossy_link_still_finishes(hosts):
    # On b's side of the link: every packet b sends waits 100 ms, and one in 20 is lost (TCP resends it).
    slowed = hosts[1].run("tc", "qdisc", "add", "dev", hosts[1].interface, "root", "netem", "delay", "100ms",
                          "loss", "5%", check=False)
    if slowed.returncode != 0:
        pytest.skip(f"tc netem is not available (a kernel without sch_netem?): {slowed.stderr.strip()}")
    started = time.monotonic()
    runs = start_run(hosts, "--n_epochs", "2")
    errors = wait_all(runs, 150)
    print(f"netem: {time.monotonic() - started:.1f} s")
    assert [run.returncode for run in runs] == [0, 0], errors
    _, saved = load_model(hosts[0].folder / "m.pth")
    assert len(saved["history"]) == 2 and "stopped" not in saved
