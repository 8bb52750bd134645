"""Shared test fixtures: fixed seeds for every test, and the default dtype restored afterwards."""

import random

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_and_restore_dtype():
    """Seed python, numpy and torch before each test; restore torch's default dtype after it."""
    dtype = torch.get_default_dtype()
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield
    torch.set_default_dtype(dtype)


@pytest.fixture
def float64():
    """Run the test with float64 as torch's default dtype (restored by the autouse fixture)."""
    torch.set_default_dtype(torch.float64)
    return torch.float64
