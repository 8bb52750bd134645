"""Hamiltonian dynamics: state layout, vector fields, integrators, rollout evaluation (torch only)."""

from .evaluate import (
    evaluate_rollouts,
    format_error_table,
    print_error_table,
    relative_error,
    rollout,
    rollout_errors,
    summarize_errors,
)
from .hamiltonian import (
    HamiltonianDynamics,
    SeparableHamiltonian,
    SpringHamiltonian,
    angular_momentum,
    conserved_quantities,
    join_state,
    kinetic_energy,
    linear_momentum,
    split_state,
    spring_energy,
    spring_potential,
    spring_potential_grad,
    symplectic_gradient,
)
from .integrate import SOLVERS, leapfrog, odeint

__all__ = [
    "HamiltonianDynamics",
    "SeparableHamiltonian",
    "SpringHamiltonian",
    "angular_momentum",
    "conserved_quantities",
    "join_state",
    "kinetic_energy",
    "linear_momentum",
    "split_state",
    "spring_energy",
    "spring_potential",
    "spring_potential_grad",
    "symplectic_gradient",
    "SOLVERS",
    "leapfrog",
    "odeint",
    "evaluate_rollouts",
    "format_error_table",
    "print_error_table",
    "relative_error",
    "rollout",
    "rollout_errors",
    "summarize_errors",
]
