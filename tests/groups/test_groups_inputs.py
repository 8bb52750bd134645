"""Bad input raises ValueError naming the argument; the registry."""

import pytest
import torch

from lieconv.groups import GROUPS, SE2, MatrixLieGroup, Subgroup, T, get_group


def test_lift_rejects_wrong_point_dimension(group):
    x = torch.randn(2, 4, group.space_dim + 1, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"^x:"):
        group.lift(x)


def test_lift_rejects_wrong_rank(group):
    with pytest.raises(ValueError, match=r"^x:"):
        group.lift(torch.randn(group.space_dim, dtype=torch.float64))


def test_lift_rejects_integer_points(group):
    with pytest.raises(ValueError, match=r"^x:"):
        group.lift(torch.ones(2, 3, group.space_dim, dtype=torch.long))


def test_lift_rejects_bad_num_samples(group):
    x = torch.rand(1, 3, group.space_dim, dtype=torch.float64) + 0.1
    with pytest.raises(ValueError, match=r"^num_samples:"):
        group.lift(x, 0)
    if group.stabilizer_dim == 0:
        with pytest.raises(ValueError, match=r"^num_samples:"):
            group.lift(x, 2)


def test_3d_points_into_se2():
    with pytest.raises(ValueError, match=r"^x: SE\(2\) acts on 2-D points"):
        SE2().lift(torch.randn(1, 5, 3))


def test_registry_builds_every_name_with_alpha():
    for name in GROUPS:
        G = get_group(name, alpha=0.05)
        assert G.alpha == 0.05
    assert get_group("T", d=3).space_dim == 3 and get_group("Trivial", d=3).q_dim == 3


def test_registry_unknown_name_lists_choices():
    with pytest.raises(ValueError, match=r"unknown group 'SE4'; choose from \[.*'SE3'.*\]"):
        get_group("SE4")


def test_alpha_out_of_range():
    with pytest.raises(ValueError, match=r"^alpha:"):
        get_group("SO2", alpha=1.5)


def test_subgroup_and_matrix_group_validate_arguments():
    with pytest.raises(ValueError, match=r"^generators:"):
        Subgroup(T(2), [2])
    with pytest.raises(ValueError, match=r"^group:"):
        Subgroup(SE2(), [0])
    with pytest.raises(ValueError, match=r"^generators:"):
        MatrixLieGroup(torch.zeros(2, 2, 3), lift_fn=torch.diag_embed)
    with pytest.raises(ValueError, match=r"^generators:"):
        MatrixLieGroup(torch.ones(2, 2, 2), lift_fn=torch.diag_embed)
