"""Training under torchrun: two CPU processes talking gloo over loopback, on scikit-learn's digits."""

from __future__ import annotations

import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from mnist_classifier.inference.model_file import load_model
from mnist_classifier.training.checkpoint import load_checkpoint
from mnist_classifier.training.distributed import DataParallel, SyncBatchNorm

from .conftest import beside, write_fake_mnist

ROOT = Path(__file__).resolve().parents[1]
# Of the digits' 1437 non-test rows, 0.98 leaves 1408 for training, a multiple of 64: every batch is
# whole, in one process (64 rows) as in two (32 each).
DIGITS = ["--dataset", "digits", "--gpu_id", "-1", "--amp", "off", "--seed", "0", "--train_ratio", "0.98",
          "--lr_schedule", "constant"]
# Each process writes the files it opens for writing, renames or removes here (see AUDIT_HOOK).
AUDIT_HOOK = """
import os, sys
_log = os.environ["WRITES_LOG"] + "." + os.environ.get("RANK", "single")
_watched = os.environ["WATCHED_DIR"]
def _note(text):
    with open(_log, "a") as f:
        f.write(text + "\\n")
def _hook(event, args):
    if not args or not isinstance(args[0], (str, bytes, os.PathLike)) or str(args[0]).startswith(_log):
        return
    mode, flags = (args[1:3] + (None, None))[:2]
    writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
        isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
    if event == "open" and str(args[0]).startswith(_watched) and writes:
        _note(f"open {args[0]}")
    if event in ("os.rename", "os.replace", "os.remove") and str(args[0]).startswith(_watched):
        _note(f"{event} {args[0]}")
sys.addaudithook(_hook)
"""


def environment(tmp_path: Path, **extra) -> dict:
    hooks = tmp_path / "hooks"
    hooks.mkdir(exist_ok=True)
    (hooks / "sitecustomize.py").write_text(AUDIT_HOOK)
    return {**os.environ, "PYTHONPATH": f"{hooks}{os.pathsep}{ROOT}", "OMP_NUM_THREADS": "1",
            "WRITES_LOG": str(tmp_path / "writes"), "WATCHED_DIR": str(tmp_path), **extra}


def torchrun(tmp_path: Path, n: int, *flags: str, **popen) -> subprocess.Popen:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
               str(ROOT / "train.py"), *flags]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=environment(tmp_path), **popen)


def finish(process: subprocess.Popen, timeout: float = 180) -> tuple[str, str]:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    return out, err


def writers(tmp_path: Path) -> set[str]:
    """Which processes (``RANK`` values) wrote anything in ``tmp_path``."""
    return {log.name.split(".", 1)[1] for log in tmp_path.glob("writes.*")}


def test_each_epoch_the_ranks_take_disjoint_equal_shards_of_one_shuffle():
    for n_rows, world in ((1408, 2), (1409, 2), (100, 3), (7, 4)):
        ranks = [DataParallel(rank, world, rank, torch.device("cpu"), seed=5) for rank in range(world)]
        for epoch in (1, 2):
            shards = [r.epoch_shard(n_rows, epoch, torch.device("cpu")) for r in ranks]
            seen = torch.cat(shards)
            assert {len(s) for s in shards} == {n_rows // world}  # the same number of steps on every rank
            assert len(set(seen.tolist())) == len(seen) == n_rows - n_rows % world  # disjoint, all but the rest
            # Together, the ranks' k-th batches of b rows are one process's k-th batch of world * b rows.
            order = torch.stack(shards, dim=1).flatten()
            b = 3
            assert set(order[:world * b].tolist()) == set(torch.cat([s[:b] for s in shards]).tolist())
        assert not torch.equal(ranks[0].epoch_shard(n_rows, 1, torch.device("cpu")),
                               ranks[0].epoch_shard(n_rows, 2, torch.device("cpu")))  # a new order each epoch


def _sync_batchnorm_worker(rank: int, port: int, x: torch.Tensor, results) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        bn = SyncBatchNorm(x.size(1))
        with torch.no_grad():
            bn.weight.copy_(torch.linspace(0.5, 1.5, x.size(1)))
        part = x.chunk(2)[rank].clone().requires_grad_()
        y = bn(part)
        (y.pow(3) * torch.arange(y.numel()).view_as(y)).sum().backward()  # a loss that weighs rows unequally
        results[rank] = {"y": y.detach(), "x_grad": part.grad, "w_grad": bn.weight.grad,
                         "running_var": bn.running_var.clone()}
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.parametrize("shape", [(12, 5), (8, 3, 4, 4)])
def test_sync_batchnorm_on_two_ranks_is_batchnorm_on_their_rows_together(shape):
    x = torch.randn(*shape) * 3 + 1
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_sync_batchnorm_worker, args=(free_port(), x, results), nprocs=2)
        results = dict(results)
    bn = (torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d)(shape[1])
    with torch.no_grad():
        bn.weight.copy_(torch.linspace(0.5, 1.5, shape[1]))
    whole = x.clone().requires_grad_()
    y = bn(whole)
    halves = y.chunk(2)
    weights = [torch.arange(h.numel()).view_as(h) for h in halves]
    sum((h.pow(3) * w).sum() for h, w in zip(halves, weights, strict=True)).backward()
    assert torch.allclose(torch.cat([results[0]["y"], results[1]["y"]]), y.detach(), atol=1e-5)
    assert torch.allclose(torch.cat([results[0]["x_grad"], results[1]["x_grad"]]), whole.grad, rtol=1e-4, atol=1e-3)
    # DDP sums the ranks' parameter gradients (then averages them); each rank holds its rows' share.
    assert torch.allclose(results[0]["w_grad"] + results[1]["w_grad"], bn.weight.grad, rtol=1e-4, atol=1e-3)
    assert torch.allclose(results[0]["running_var"], bn.running_var, atol=1e-5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process and two, with the same global batch of 64 rows (started together: each launch
    spends seconds importing), and a two-process run stopped after 4 epochs, then resumed to 8."""
    folders = {name: tmp_path_factory.mktemp(name) for name in ("one", "two", "half")}
    common = [*DIGITS, "--n_epochs", "8"]
    launches = {
        "one": torchrun(folders["one"], 1, *common, "--batch_size", "64", "--model_fn", str(folders["one"] / "m.pth")),
        "two": torchrun(folders["two"], 2, *common, "--batch_size", "32", "--sync_bn", "--checkpoint_every", "2",
                        "--model_fn", str(folders["two"] / "m.pth")),
    }
    outputs = {name: finish(process) for name, process in launches.items()}
    half = folders["half"]
    finish(torchrun(half, 2, *DIGITS, "--n_epochs", "4", "--batch_size", "32", "--sync_bn", "--checkpoint_every", "4",
                    "--model_fn", str(half / "m.pth")))
    resumed = beside(half / "m.pth", "checkpoint")
    outputs["resumed"] = finish(torchrun(half, 2, "--resume", str(resumed), "--n_epochs", "8"))
    return folders, outputs


def test_two_ranks_score_as_one_process_with_the_same_global_batch(runs):
    folders, outputs = runs
    one, one_file = load_model(folders["one"] / "m.pth")
    two, two_file = load_model(folders["two"] / "m.pth")
    # The same batches, synchronised batch norm and averaged gradients make the same training, up
    # to the order of float additions, which differs between one process and two and between
    # CPUs (AVX2, AVX-512). Adam divides each gradient by its own size, so those rounding
    # differences grow into visible ones within the first epoch.
    # - The first epoch's losses. Measured (2-core AMD EPYC, AVX-512, 2026-12-01): one thread vs
    #   two in one process moved them by up to 8e-4 (relative); one process vs two ranks by up to
    #   2.1e-3; two ranks each normalising only its own 32 rows, by 1.1e-2 (train) and 5.4e-3
    #   (validation). The bounds sit above the first two and below the third.
    first_one, first_two = one_file["history"][0], two_file["history"][0]
    assert first_one["train_loss"] == pytest.approx(first_two["train_loss"], rel=5e-3)
    assert first_one["valid_loss"] == pytest.approx(first_two["valid_loss"], rel=2.5e-3)
    # - The final test accuracy. Reordering moved it by 1 to 3 of the 360 test rows on the CPUs
    #   seen; 2% of the test rows (8 here) leaves room for others. The losses above are the sharper check.
    result = re.compile(r"Test accuracy: ([\d.]+)% \((\d+) images\)")
    printed = {name: result.search(outputs[name][0]) for name in ("one", "two")}
    n_test = int(printed["one"].group(2))
    rows_apart = abs(float(printed["one"].group(1)) - float(printed["two"].group(1))) / 100 * n_test
    assert rows_apart <= math.ceil(0.02 * n_test) + 0.01, printed  # + 0.01: the printed figures are rounded
    assert two_file["config"]["world_size"] == 2 and one_file["config"]["world_size"] == 1


def test_only_rank_0_prints_and_writes_files(runs):
    folders, outputs = runs
    out, err = outputs["two"]
    assert out.count("Epoch(1/8)") == 1 and out.count("Test accuracy") == 1
    assert "2 processes (gloo) on cpu, global batch 64" in out
    assert writers(folders["two"]) == {"0"}, "a rank other than 0 wrote in the run's folder"
    written = (folders["two"] / "writes.0").read_text()
    assert f"os.rename {folders['two'] / '.m.pth.'}" in written and "m.pth.ckpt" in written  # the hook sees writes
    assert sorted(p.name for p in folders["two"].iterdir() if not p.name.startswith(("writes", "hooks"))) == \
        ["m.pth", "m.pth.ckpt", "m.pth.config.json", "m.pth.history.csv"]  # and no temporary file left behind


def test_a_resumed_distributed_run_continues_exactly(runs):
    folders, outputs = runs
    assert "Resuming after epoch 4" in outputs["resumed"][0]
    whole, resumed = load_model(folders["two"] / "m.pth")[1], load_model(folders["half"] / "m.pth")[1]
    for name, value in whole["model"].items():
        assert torch.equal(value, resumed["model"][name]), name
    assert [h["valid_loss"] for h in whole["history"]] == [h["valid_loss"] for h in resumed["history"]]


def test_a_distributed_checkpoint_resumes_in_one_process_with_the_same_global_batch(runs, tmp_path):
    folders, _ = runs
    checkpoint = beside(tmp_path / "m.pth", "checkpoint")
    checkpoint.write_bytes(beside(folders["half"] / "m.pth", "checkpoint").read_bytes())  # the resumed run's epoch 8
    single = subprocess.run([sys.executable, str(ROOT / "train.py"), "--resume", str(checkpoint), "--n_epochs", "10"],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert single.returncode == 0, single.stderr[-3000:]
    assert "resuming on 1 process(es) a run begun on 2: --batch_size 64 per process keeps its global batch of 64" \
        in single.stderr
    _, saved = load_model(tmp_path / "m.pth")
    assert len(saved["history"]) == 10 and saved["config"]["world_size"] == 1 and saved["config"]["batch_size"] == 64


def test_a_resume_that_cannot_keep_the_global_batch_is_refused():
    from mnist_classifier.training.config import TrainConfig
    from mnist_classifier.training.distributed import regrouped_batch_size

    assert regrouped_batch_size(TrainConfig(model_fn="m.pth", batch_size=15), 2, 4) is None  # 30 over 4
    assert regrouped_batch_size(TrainConfig(model_fn="m.pth", lr_schedule="onecycle"), 2, 1) is None
    assert regrouped_batch_size(TrainConfig(model_fn="m.pth", batch_size=32), 2, 1) == 64
    assert regrouped_batch_size(TrainConfig(model_fn="m.pth", batch_size=32, lr_schedule="onecycle"), 2, 2) == 32


def start_ranks(tmp_path: Path, *flags: str) -> list[subprocess.Popen]:
    """Two ranks started as torchrun would, but without its agent: what a rank does on its own when
    its peer dies (the agent would also stop it)."""
    port = free_port()
    common = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2"}
    command = [sys.executable, str(ROOT / "train.py"), *DIGITS, "--n_epochs", "1000", "--batch_size", "16",
               "--model_fn", str(tmp_path / "m.pth"), "--checkpoint_every", "1", *flags]
    return [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=environment(tmp_path, RANK=str(rank), LOCAL_RANK=str(rank), **common))
            for rank in (0, 1)]


def wait_for_line(stream, start: str) -> None:
    for line in stream:
        if line.startswith(start):
            return
    raise AssertionError(f"the run ended before printing {start!r}")


@pytest.mark.parametrize("fault", ["killed", "hung"])
def test_a_lost_rank_stops_the_run_with_one_line_and_keeps_the_last_epoch(tmp_path, fault):
    rank0, rank1 = start_ranks(tmp_path, "--dist_timeout", "5")
    try:
        wait_for_line(rank0.stdout, "Epoch(2/")
        rank1.send_signal(signal.SIGKILL if fault == "killed" else signal.SIGSTOP)
        lost_at = time.monotonic()
        _, err = rank0.communicate(timeout=60)
        assert time.monotonic() - lost_at < (10 if fault == "killed" else 30)
    finally:
        rank1.kill()
        rank1.communicate()
    assert rank0.returncode == 1, err
    assert "Traceback" not in err
    assert "rank 0: another process of the run stopped or stopped answering" in err
    assert f"torchrun ... train.py --resume {tmp_path / 'm.pth.ckpt'}" in err
    model, saved = load_model(tmp_path / "m.pth")  # whole, and what the last completed epochs achieved
    assert len(saved["history"]) >= 2 and "another process" in saved["stopped"]
    assert len(load_checkpoint(beside(tmp_path / "m.pth", "checkpoint"))["trainer"]["history"]) == len(saved["history"])


def test_ctrl_c_on_torchrun_stops_every_rank_and_leaves_a_checkpoint(tmp_path):
    launcher = torchrun(tmp_path, 2, *DIGITS, "--n_epochs", "1000", "--batch_size", "16",
                        "--model_fn", str(tmp_path / "m.pth"))
    wait_for_line(launcher.stdout, "Epoch(2/")
    launcher.send_signal(signal.SIGINT)  # what Ctrl-C in its terminal sends it; it passes it to each rank
    _, err = launcher.communicate(timeout=60)
    assert launcher.returncode != 0
    assert err.count("SIGINT: stopping after this batch") == 1  # said once, by rank 0
    assert "SIGINT during epoch" in err
    checkpoint = load_checkpoint(beside(tmp_path / "m.pth", "checkpoint"))
    assert checkpoint["config"]["world_size"] == 2 and len(checkpoint["trainer"]["history"]) >= 2
    assert writers(tmp_path) == {"0"}


@pytest.mark.parametrize("flags", [["--model", "cnn", "--sync_bn"], ["--model", "rnn"]], ids=["cnn", "rnn"])
def test_every_model_family_trains_on_two_ranks(tmp_path, flags):
    out, _ = finish(torchrun(tmp_path, 2, *DIGITS, "--n_epochs", "6", "--batch_size", "32", *flags,
                             "--model_fn", str(tmp_path / "m.pth")))
    assert float(out.split("Test accuracy: ")[1].split("%")[0]) > 50  # chance is 10%
    model, saved = load_model(tmp_path / "m.pth")  # the synchronised BatchNorm2d saved as a plain one
    assert saved["config"]["model"] == flags[1] and writers(tmp_path) == {"0"}


def test_a_text_model_trains_on_two_ranks_and_only_rank_0_writes_the_token_cache(tmp_path):
    from .test_texts import write_folder

    root = write_folder(tmp_path / "topics")
    out, _ = finish(torchrun(tmp_path, 2, "--dataset", f"text:{root}", "--model", "cnn", "--n_epochs", "8",
                             "--batch_size", "8", "--gpu_id", "-1", "--amp", "off", "--seed", "0",
                             "--data_dir", str(tmp_path / "data"), "--model_fn", str(tmp_path / "m.pth")))
    assert out.startswith("text folder topics: 2 classes") and out.count("text folder topics") == 1
    assert float(out.split("Test accuracy: ")[1].split("%")[0]) >= 75  # 24 test texts; chance is 50%
    assert len(list((tmp_path / "data" / "text-cache").glob("*/*.tokens.npy"))) == 2
    assert writers(tmp_path) == {"0"}


def rank_pid(marker: str, rank: int) -> int:
    """The pid of the torchrun worker of ``rank`` whose environment holds ``marker``."""
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            variables = environ.read_bytes().split(b"\0")
        except OSError:
            continue
        if marker.encode() in variables and f"RANK={rank}".encode() in variables:
            return int(environ.parent.name)
    raise AssertionError(f"no process of rank {rank} found")


def test_under_torchrun_a_killed_rank_leaves_rank_0s_files_whole(tmp_path):
    # torchrun's agent SIGTERMs the survivors as soon as one worker dies; rank 0 must still save.
    marker = f"RUN_MARK={tmp_path.name}"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(ROOT / "train.py"), *DIGITS, "--n_epochs", "1000", "--batch_size", "16",
               "--model_fn", str(tmp_path / "m.pth")]
    launcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=environment(tmp_path, RUN_MARK=tmp_path.name))
    wait_for_line(launcher.stdout, "Epoch(3/")
    os.kill(rank_pid(marker, 1), signal.SIGKILL)
    _, err = launcher.communicate(timeout=60)
    assert launcher.returncode != 0
    assert "another process of the run stopped" in err and "exiting at once" not in err
    _, saved = load_model(tmp_path / "m.pth")
    assert len(saved["history"]) >= 2
    assert len(load_checkpoint(beside(tmp_path / "m.pth", "checkpoint"))["trainer"]["history"]) == len(saved["history"])


@pytest.mark.parametrize("mistake", ["unreadable csv", "output not ours"])
def test_a_mistake_one_rank_finds_is_reported_once(tmp_path, mistake):
    data = tmp_path / "rows.csv"
    data.write_text("a,b,label\n1,2,0\n3,\"x,y\n" if mistake == "unreadable csv" else
                    "a,b,label\n" + "".join(f"{i},{i % 7},{i % 2}\n" for i in range(200)))
    model_fn = tmp_path / "m.pth"
    if mistake == "output not ours":
        model_fn.write_text("my notes")
    launcher = torchrun(tmp_path, 2, "--dataset", f"csv:{data}", "--gpu_id", "-1", "--amp", "off",
                        "--batch_size", "8", "--n_epochs", "1", "--model_fn", str(model_fn))
    _, err = launcher.communicate(timeout=120)
    assert launcher.returncode != 0
    lines = [line for line in err.splitlines() if line.startswith("mnist-train: error:")]
    assert len(lines) == 1, err[-3000:]
    assert "another process" not in err
    if mistake == "output not ours":
        assert "is not a model file of mnist_classifier" in lines[0] and model_fn.read_text() == "my notes"


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "1e10"])
def test_an_impossible_dist_timeout_is_refused(value, tmp_path):
    from mnist_classifier.cli.train import parse_config
    from mnist_classifier.errors import UserError, in_flags

    with pytest.raises(UserError, match="^dist_timeout") as refused:  # the library names the parameter ...
        parse_config(["--model_fn", str(tmp_path / "m.pth"), "--dist_timeout", value])
    assert in_flags(refused.value).startswith("--dist_timeout ")  # ... and the command line its flag


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_asking_for_a_gpu_without_one_is_refused_under_torchrun_too():
    from mnist_classifier.errors import UserError
    from mnist_classifier.training.distributed import _device

    with pytest.raises(UserError, match="--gpu_id 0: no CUDA device is available"):
        _device(0, 0)


def torchrun_nodes(tmp_path: Path, *flags_per_node: list[str]) -> list[subprocess.Popen]:
    """One torchrun agent per "machine" (``--nnodes``, one process each, meeting over loopback through
    the c10d rendezvous), each started with its own flags, as on machines whose commands differ."""
    endpoint = f"127.0.0.1:{free_port()}"
    return [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", f"--nnodes={len(flags_per_node)}",
                              "--nproc_per_node=1", "--rdzv_backend=c10d", f"--rdzv_endpoint={endpoint}",
                              f"--rdzv_id={tmp_path.name}", f"--rdzv_conf=is_host={node == 0}",
                              str(ROOT / "train.py"), *flags],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment(tmp_path))
            for node, flags in enumerate(flags_per_node)]


@pytest.mark.parametrize(("flag", "values", "shown"), [
    ("--lr", ("0.001", "0.01"), ("0.001", "0.01")),
    ("--hidden_sizes", ("32", "48"), ("[32]", "[48]")),
    ("--batch_size", ("16", "32"), ("16", "32")),
], ids=["lr", "hidden_sizes", "batch_size"])
def test_ranks_started_with_different_flags_are_refused_in_one_line(tmp_path, flag, values, shown):
    data_dir = write_fake_mnist(tmp_path / "data", n_train=200, n_test=50)
    common = ["--data_dir", str(data_dir), "--gpu_id", "-1", "--amp", "off", "--seed", "0", "--n_epochs", "2",
              "--batch_size", "16", "--hidden_sizes", "32", "--model_fn", str(tmp_path / "m.pth")]
    started = time.monotonic()
    nodes = torchrun_nodes(tmp_path, *([*common, flag, value] for value in values))
    try:
        errors = [node.communicate(timeout=90)[1] for node in nodes]
    finally:
        for node in nodes:
            node.kill()
    assert time.monotonic() - started < 60  # not the 120 s of --dist_timeout
    assert all(node.returncode != 0 for node in nodes)
    lines = [line for err in errors for line in err.splitlines() if line.startswith("mnist-train: error:")]
    assert lines == [f"mnist-train: error: ranks disagree on {flag}: rank 0 has {shown[0]}, rank 1 has {shown[1]}; "
                     "start every process with the same flags"], "\n".join(e[-2000:] for e in errors)
    ours = (f'File "{ROOT / "mnist_classifier"}', f'File "{ROOT / "train.py"}')
    assert not any(frame in err for err in errors for frame in ours)  # no traceback of ours (torchrun has its own)
    assert not (tmp_path / "m.pth").exists() and writers(tmp_path) <= {"0"}


def test_settings_each_machine_may_hold_its_own_way_are_not_compared():
    from mnist_classifier.training.config import TrainConfig
    from mnist_classifier.training.distributed import _comparable

    def settings(**values) -> dict:
        config = TrainConfig(**{"model_fn": "m.pth", **values}).validate()
        return _comparable(config.to_dict())

    mine = settings(data_dir="/a/data", verbose=1, dist_timeout=30, dataset="csv:/a/rows.csv")
    assert mine == settings(model_fn="/b/m.pth", data_dir="/b/data", verbose=0, dataset="csv:/b/rows.csv",
                            tensorboard="/b/logs")
    assert mine["dataset"] == "csv:PATH" and mine != settings(dataset="csv:/a/rows.csv", lr=0.01)
    assert "hidden_sizes" in settings(model="mlp")  # the model's options, under their own flags
