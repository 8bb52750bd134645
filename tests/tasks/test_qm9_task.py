"""QM9 task on a tiny synthetic qm9pack-format source (no real data): config, loss, training,
evaluation, the equivariance and benchmark commands, and bad input surfacing before training."""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch

from lieconv.datasets import _offline
from lieconv.datasets.qm9 import CSV_SHA256, TARGETS, QM9FormatError
from lieconv.datasets.transforms import RandomTranslation3d
from lieconv.tasks import qm9 as task_mod
from lieconv.tasks.qm9 import QM9Config, QM9Task, subset_indices, unit_suffix
from lieconv.training.config import resolve_config
from lieconv.training.trainer import evaluate, fit, load_model

HEADER = (
    "XYZ_file,Index,SMILES,InChi,N_atoms,Stoichiometry,Elements,XYZ_Ang,Mulliken_pop,Harmonic_Freq_cmi,"
    "RotA_GHz,RotB_GHz,RotC_GHz,Dipole_debye,Polarizability_bohr3,HOMO_au,LUMO_au,HOMO_LUMO_gap_au,R2_bohr2,"
    "ZPVE_au,InternalEnergy_0K_au,InternalEnergy_298K_au,Enthalphy_298K_au,GibbsFreeEnergy_298K_au,"
    "Heatcapacity_Cv_cal_mol_K"
)
N_MOLS, SPLIT_TRAIN = 40, 24  # -> 24 train, 12 valid, 4 test


def fake_row(index: int, elements: list[str], g: torch.Generator) -> str:
    """One molecule in the qm9pack CSV format; homo grows with the number of heavy atoms."""
    n = len(elements)
    xyz = torch.randn(n, 3, generator=g) * 1.2
    xyz_txt = ",".join("[" + ",".join(f"{v:.6f}" for v in p) + "]" for p in xyz.tolist())
    heavy = sum(e != "H" for e in elements)
    homo = -0.30 + 0.01 * heavy + 0.002 * float(torch.rand((), generator=g))
    elems = ",".join(f"'{e}'" for e in elements)
    zeros = ",".join(["0."] * n)
    return (
        f'"dsgdb9nsd_{index:06d}.xyz",{index},"X","InChI=fake",{n},"[0,0,0,0,0]","[{elems}]","[{xyz_txt}]",'
        f'"[{zeros}]","[100.]",1.,2.,3.,{0.5 + 0.1 * heavy},{10 + heavy}.,{homo:.6f},0.05,{0.05 - homo:.6f},'
        f"{50 + n}.5,0.03,{-40.0 * heavy},{-40.0 * heavy + 0.003},{-40.0 * heavy + 0.004},"
        f"{-40.0 * heavy - 0.02},{5 + 0.1 * n}"
    )


def write_source(directory, bad_element: str | None = None):
    """``N_MOLS`` fake molecules over the three qm9pack CSV files; optionally one with ``bad_element``."""
    g = torch.Generator().manual_seed(7)
    pool = ["C", "N", "O", "F"]
    rows = []
    for i in range(1, N_MOLS + 1):
        heavy = [pool[int(j)] for j in torch.randint(0, 4, (1 + i % 4,), generator=g)]
        elems = heavy + ["H"] * (1 + i % 3)
        if bad_element is not None and i == 17:
            elems[0] = bad_element
        rows.append(fake_row(i, elems, g))
    directory.mkdir(parents=True, exist_ok=True)
    for name, part in zip(CSV_SHA256, (rows[:15], rows[15:30], rows[30:])):
        (directory / name).write_text("\n".join([HEADER, *part]) + "\n")
    return directory


def tiny(tmp_path, source, **kw) -> dict:
    opts = dict(
        data_source=str(source),
        data_root=str(tmp_path / "cache"),
        split_train=SPLIT_TRAIN,
        k=8,
        num_layers=1,
        batch_size=8,
        epochs=2,
        warmup_epochs=0.5,
        device="cpu",
        out=str(tmp_path / "run"),
        resume=False,
    )
    opts.update(kw)
    return opts


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return write_source(tmp_path_factory.mktemp("qm9src") / "csv")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, source):
    """A T3 model trained for 2 epochs on the fake data, without augmentation."""
    tmp = tmp_path_factory.mktemp("qm9run")
    summary = fit(
        "qm9",
        preset="quick",
        overrides=tiny(tmp, source, group="T3", augment=False, n_train=0, n_valid=0, n_test=0),
        print_lines=False,
    )
    return summary


# ----------------------------------------------------------------------------------------------- config


def test_config_choices_presets_and_group_defaults():
    paper = resolve_config(QM9Task, "paper")
    assert (paper.k, paper.num_layers, paper.batch_size, paper.epochs, paper.lr) == (1536, 6, 100, 1000, 3e-3)
    assert paper.warmup_epochs == pytest.approx(0.01 * paper.epochs) and paper.cosine and paper.augment
    assert paper.target == "homo" and paper.group == "T3"
    quick = resolve_config(QM9Task, "quick")
    assert quick.n_train and quick.k < 1536 and quick.num_layers < 6
    fields = {f.name: f for f in QM9Config.__dataclass_fields__.values()}
    assert fields["target"].metadata["choices"] == list(TARGETS) and len(TARGETS) == 12
    assert fields["target"].metadata["aliases"] == ["--task"]
    assert task_mod.QM9_TARGETS == TARGETS  # the copy kept to avoid importing the data module
    assert fields["group"].metadata["choices"] == ["Trivial3", "T3", "SO3", "SE3"]
    opts = QM9Task(resolve_config(QM9Task, "paper", overrides={"group": "SE3"})).model_options()
    assert (opts["nbhd"], opts["fill"], opts["liftsamples"]) == (25, 0.5, 4)
    opts = QM9Task(resolve_config(QM9Task, "paper", overrides={"group": "T3"})).model_options()
    assert (opts["nbhd"], opts["fill"], opts["liftsamples"]) == (100, 1.0, 1)
    opts = QM9Task(resolve_config(QM9Task, "paper", overrides={"group": "SO3", "nbhd": 10})).model_options()
    assert opts["nbhd"] == 10 and opts["liftsamples"] == 4


def test_unknown_target_lists_the_12_choices():
    with pytest.raises(
        ValueError,
        match=r"target: unknown value 'energy'; choose from \['alpha', 'gap', 'homo'"
        r".*'zpve'\]",
    ) as info:
        resolve_config(QM9Task, "quick", overrides={"target": "energy"})
    assert all(repr(t) in str(info.value) for t in TARGETS)
    with pytest.raises(ValueError, match="group: unknown value 'SE2'"):
        resolve_config(QM9Task, "quick", overrides={"group": "SE2"})


def test_helpers():
    assert [unit_suffix(u) for u in ("meV", "D", "bohr^3", "bohr^2", "cal/(mol K)")] == [
        "meV",
        "D",
        "bohr3",
        "bohr2",
        "cal_per_mol_K",
    ]
    a = subset_indices(100, 10, 3)
    assert a == subset_indices(100, 10, 3) and a == sorted(a) and len(set(a)) == 10
    assert subset_indices(100, 0, 3) is None and subset_indices(100, 100, 3) is None
    x = torch.randn(4, 5, 3)
    mask = torch.ones(4, 5, dtype=torch.bool)
    mask[0, 3:] = False
    x[0, 3:] = 0
    y = RandomTranslation3d(translation_std=0.5, generator=torch.Generator().manual_seed(0))(x, mask)
    d = y - x
    assert torch.allclose(d[:, :1].expand(-1, 5, -1)[mask], d[mask])  # one shift per molecule
    assert torch.all(y[0, 3:] == 0) and not torch.allclose(d[0, 0], d[1, 0])


# ----------------------------------------------------------------------------------------------- loss


def test_loss_is_standardised_l1_and_mae_in_units(tmp_path, source):
    task = QM9Task(
        resolve_config(
            QM9Task,
            "quick",
            overrides=tiny(tmp_path, source, target="gap", augment=True, n_train=10, n_valid=5, n_test=0),
        )
    )
    data = task.datasets()
    assert (len(data["train"]), len(data["valid"]), len(data["test"])) == (10, 5, 4)
    mean, std = task.stats
    assert data["train"].stats["gap"] == (mean, std) and std > 0
    seen = []

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, positions, features, mask, generator=None):
            seen.append(positions.clone())
            return self.w + torch.zeros(positions.shape[0])

    batch = task.collate([data["train"][i] for i in range(6)])
    model = Probe().eval()
    loss, logs = task.loss(model, batch)
    y = batch["gap"].double()
    assert float(loss.detach()) == pytest.approx(float(((y - mean) / std).abs().mean()), rel=1e-5)
    assert float(logs["mae_meV"]) == pytest.approx(float((y - mean).abs().mean()), rel=1e-5)
    assert float(logs["mae"]) == float(logs["mae_meV"])
    assert torch.equal(seen[-1], batch["positions"])  # no augmentation in eval mode
    model.train()
    task.loss(model, batch)
    m = batch["mask"]
    assert not torch.allclose(seen[-1], batch["positions"])  # SO(3)-rotated in training
    torch.testing.assert_close(seen[-1].norm(dim=-1)[m], batch["positions"].norm(dim=-1)[m])
    torch.testing.assert_close(task.predict(model.eval(), batch), torch.full((6,), mean, dtype=torch.float32))


# ----------------------------------------------------------------------------------------------- training


def test_fit_eval_and_metric_names(trained):
    assert trained["status"] == "completed" and trained["epochs_completed"] == 2
    test = trained["test"]
    assert set(test) == {"loss", "mae", "mae_meV"} and math.isfinite(test["mae_meV"])
    assert trained["monitor"] == "valid/mae"
    std = trained["report"]["train_stats"][1]
    assert test["mae_meV"] == pytest.approx(test["loss"] * std, rel=1e-4)
    again = evaluate(trained["best_checkpoint"], "qm9", device="cpu")
    assert again["mae_meV"] == pytest.approx(test["mae_meV"], rel=1e-5)


def test_equivariance_command_on_a_checkpoint(trained, tmp_path, capsys):
    cmd = QM9Task.commands["equivariance"]
    parser = argparse.ArgumentParser()
    cmd.add_arguments(parser)
    out = tmp_path / "eq.json"
    args = parser.parse_args(["--checkpoint", trained["best_checkpoint"], "--n-test", "0", "--json", str(out)])
    assert cmd.run(args) == 0
    text = capsys.readouterr().out
    assert "N/N" in text and "N/T(3)" in text and "N/SO(3)" in text and "N/SE(3)" in text and "T(3) " in text
    res = json.loads(out.read_text())
    assert res["unit"] == "meV" and res["group"] == "T3" and not res["augment"]
    mae = res["mae"]
    assert mae["N"] == pytest.approx(trained["test"]["mae_meV"], rel=1e-4)  # same test set, same metric
    assert mae["T(3)"] == pytest.approx(mae["N"], rel=1e-4)  # T(3) model: translation-invariant
    with pytest.raises(ValueError, match="n_test"):
        cmd.run(parser.parse_args(["--checkpoint", trained["best_checkpoint"], "--n-test", "-1"]))


def test_equivariance_table_se3_and_trivial_models(tmp_path, source):
    """Predictions of an SE(3) model hardly move under random SE(3) motions; a Trivial model's do."""
    change = {}
    for group in ("SE3", "Trivial3"):
        cfg = resolve_config(
            QM9Task,
            "quick",
            overrides=tiny(tmp_path, source, group=group, n_test=0, liftsamples=2 if group == "SE3" else 0),
        )
        task = QM9Task(cfg)
        torch.manual_seed(0)
        model = task.build_model().eval()
        res = task_mod.equivariance_table(model, task, n_test=0, seed=3, columns=("N", "T(3)", "SE(3)"))
        assert set(res) == {"N", "T(3)", "SE(3)"} and all(math.isfinite(v) for v in res.values())
        batch = task.collate([task.datasets()["test"][i] for i in range(4)])
        moved = dict(
            batch,
            positions=task_mod._column_transform("SE(3)", 0.5, torch.Generator().manual_seed(1))(
                batch["positions"], batch["mask"]
            ),
        )
        with torch.no_grad():
            p0 = task.predict(model, batch, generator=torch.Generator().manual_seed(5))
            p1 = task.predict(model, moved, generator=torch.Generator().manual_seed(5))
        change[group] = float((p1 - p0).abs().max() / (p0 - p0.mean()).abs().max())
    assert change["SE3"] < 0.3 and change["Trivial3"] > 3 * change["SE3"], change


def test_benchmark_steps(tmp_path, source):
    task = QM9Task(resolve_config(QM9Task, "quick", overrides=tiny(tmp_path, source)))
    res = task_mod.benchmark_steps(task, steps=1, warmup=0)
    assert res["step_s"] > 0 and res["epoch_s"] >= res["step_s"] and res["peak_rss_MiB"] >= res["rss_before_MiB"]


# ----------------------------------------------------------------------------------------------- bad input


def test_bad_element_fails_before_training(tmp_path):
    bad = write_source(tmp_path / "bad", bad_element="S")
    opts = tiny(tmp_path, bad)
    with pytest.raises(
        ValueError,
        match=r"qm9 data: .*qm9_part2\.csv: line 3: molecule 17 has element 'S'; "
        r"only H, C, N, O, F",
    ):
        fit("qm9", preset="quick", overrides=opts, print_lines=False)
    assert not (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()


def test_corrupt_csv_and_cache(tmp_path, source):
    broken = write_source(tmp_path / "trunc")
    part = broken / "qm9_part1.csv"
    part.write_text(part.read_text()[:-80])
    task = QM9Task(resolve_config(QM9Task, "quick", overrides=tiny(tmp_path, broken)))
    with pytest.raises(QM9FormatError, match=r"qm9 data: .*qm9_part1\.csv: line 16"):
        task.datasets()
    # a corrupt processed cache is reported and rebuilt
    opts = tiny(tmp_path, source, data_root=str(tmp_path / "c2"))
    QM9Task(resolve_config(QM9Task, "quick", overrides=opts)).datasets()
    (cache,) = (tmp_path / "c2" / "qm9").glob("qm9-*.pt")
    blob = bytearray(cache.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    cache.write_bytes(bytes(blob))
    with pytest.warns(UserWarning, match="checksum mismatch"):
        data = QM9Task(resolve_config(QM9Task, "quick", overrides=opts)).datasets()
    assert len(data["train"]) > 0
    assert _offline.load_cache(cache, torch.load(cache, weights_only=True)["key"]) is not None


def test_equivariance_rejects_other_checkpoints(tmp_path):
    cmd = QM9Task.commands["equivariance"]
    with pytest.raises(ValueError, match="does not exist"):
        cmd.run(
            argparse.Namespace(
                checkpoint=str(tmp_path / "none.ckpt"),
                n_test=None,
                seed=0,
                translation_std=0.5,
                batch_size=None,
                json=None,
            )
        )
    assert set(QM9Task.commands) == {"equivariance", "benchmark"}
    with pytest.raises(ValueError, match="checkpoint"):
        load_model(tmp_path / "none.ckpt", "qm9")


def test_cli_eval_and_equivariance(trained, capsys):
    from lieconv.cli import main

    ckpt = trained["best_checkpoint"]
    assert main(["eval", "qm9", "--checkpoint", ckpt, "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "mae_meV" in out and f"{trained['test']['mae_meV']:.6g}" in out
    assert main(["equivariance", "qm9", "--checkpoint", ckpt, "--n-test", "0", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "Model" in out and "N/SE(3)" in out and "test MAE (meV)" in out
    assert main(["equivariance", "qm9", "--checkpoint", ckpt + ".missing"]) == 2
    assert "does not exist" in capsys.readouterr().err
