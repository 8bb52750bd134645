"""Rollout errors (Fig. 7 quantities), the printed table and the figure smoke tests."""

import torch

from lieconv.datasets.springs import spring_exact_solution
from lieconv.dynamics import evaluate_rollouts, format_error_table, relative_error, rollout_errors, summarize_errors
from lieconv.dynamics.hamiltonian import join_state

F64 = dict(dtype=torch.float64)


def _truth(B=3, T=120):
    g = torch.Generator().manual_seed(0)
    z0 = join_state(0.4 * torch.randn(B, 6, 2, generator=g, **F64), 0.6 * torch.randn(B, 6, 2, generator=g, **F64))
    m = 0.1 + 3 * torch.rand(B, 6, generator=g, **F64)
    k = 5 * torch.rand(B, 6, generator=g, **F64)
    times = 0.01 * torch.arange(T, **F64)
    sp = torch.stack([m, k], -1)
    return spring_exact_solution(z0, m, k, times), times, sp


def test_relative_error_definition():
    a, b = torch.tensor([[3.0, 4.0]]), torch.tensor([[0.0, 0.0]])
    torch.testing.assert_close(relative_error(a, b), torch.tensor([1.0]))
    torch.testing.assert_close(relative_error(a, a), torch.tensor([0.0]))
    torch.testing.assert_close(
        relative_error(torch.tensor([2.0]), torch.tensor([1.0]), vector=False), torch.tensor([1 / 3])
    )


def test_rollout_errors_of_truth_and_of_a_drifting_model():
    true, times, sp = _truth()
    errs = rollout_errors(true, true, sp)
    assert set(errs) == {"state", "energy", "linear_momentum", "angular_momentum"}
    assert all(e.shape == (3, 120) and (e == 0).all() for e in errs.values())

    def drifting(z0, ts, params):  # pushes every body along +x: momentum changes
        out = spring_exact_solution(z0, params[..., 0], params[..., 1], ts)
        out[..., 12::2] += ts[None, :, None]
        return out

    res = evaluate_rollouts(drifting, true, times, sp, n_steps=100)
    assert res["pred"].shape == (3, 100, 24) and res["errors"]["state"].shape == (3, 100)
    assert res["errors"]["linear_momentum"][:, 0].max() < 1e-14  # t = 0: no drift yet
    assert res["summary"]["linear_momentum"] > 1e-2
    at = summarize_errors(res["errors"], at_steps=(10, 50, 100))
    assert set(at) == set(errs) | {f"{q}@{k}" for q in errs for k in (10, 50)}  # step 100 is past T = 100
    torch.testing.assert_close(
        torch.tensor(at["state@50"], dtype=torch.float64),
        res["errors"]["state"][:, 50].log().mean().exp(),
        rtol=1e-12,
        atol=0,
    )
    table = format_error_table({"exact": summarize_errors(errs), "drifting": res["errors"]})
    assert "drifting" in table and "angular_momentum" in table and len(table.splitlines()) == 4


def test_plots_write_pngs(tmp_path):
    from lieconv.plots.dynamics import plot_data_efficiency, plot_momenta, plot_rollout_errors, plot_trajectories

    true, times, sp = _truth(T=100)
    pred = true + 1e-3 * torch.randn_like(true)
    errs = {"noisy": rollout_errors(pred, true, sp), "noisier": rollout_errors(true + 1e-2, true, sp)}
    paths = [
        plot_trajectories(true[0], {"HOGN": pred[0], "HLieConv": true[0]}, tmp_path / "traj.png"),
        plot_rollout_errors(errs, times, tmp_path / "errors.png"),
        plot_momenta({"T2": pred[0], "SO2*": true[0]}, true[0], times, tmp_path / "momenta.png"),
        plot_data_efficiency(
            {"FC": {100: [1.0, 1.2], 1000: [0.3, 0.25]}, "HOGN": {100: [0.5], 1000: [0.05]}},
            tmp_path / "sub" / "efficiency.png",
        ),
    ]
    for p in paths:
        assert p.exists() and p.stat().st_size > 1000 and p.suffix == ".png"
