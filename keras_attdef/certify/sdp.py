"""The exact SDP relaxation with cvxpy + SCS, bracketed soundly from both sides.

SCS's objective is only accurate to its tolerance, so it is never reported: its dual is re-checked in
float64 (`dual.eigen_value_bound`) for an upper bound and its primal made feasible (`sdp_lower_bound`)
for a lower bound of the optimum.
"""
from __future__ import annotations

import numpy as np


class SolverError(RuntimeError):
    """The SDP solver did not reach an optimal status: no certificate is given."""


def sdp_dual(p, eps: float = 1e-7, max_iters: int = 100_000):
    """Solves max <P, Z> s.t. diag(Z) <= 1, Z PSD with cvxpy + SCS.

    Returns:
        `(c, objective, z)`: the diagonal dual c (feed it to `eigen_value_bound` for a sound upper bound
        of the optimum), SCS's objective (the optimum only up to `eps`) and SCS's primal Z (feed it to
        `sdp_lower_bound` for a sound lower bound of the optimum).

    Raises:
        SolverError: the solver's status is not optimal.
    """
    import cvxpy as cp

    n = p.shape[0]
    z = cp.Variable((n, n), PSD=True)
    diag = cp.diag(z) <= 1
    problem = cp.Problem(cp.Maximize(cp.sum(cp.multiply(p, z))), [diag])
    problem.solve(solver=cp.SCS, eps=eps, max_iters=max_iters)
    if problem.status != "optimal" or diag.dual_value is None or z.value is None:
        raise SolverError(f"SCS ended with status {problem.status!r}; no certificate. Raise max_iters or eps.")
    return np.asarray(diag.dual_value, np.float64), float(problem.value), np.asarray(z.value, np.float64)


def sdp_lower_bound(p, z, rows: int | None = None, steps: int = 500) -> float:
    """<P, Z'> for a feasible Z' built from an approximate primal Z: a sound lower bound of the SDP.

    Z is symmetrised and factored as V V^T over its positive eigenvalues (Z+ is PSD), and every row of
    V is scaled to norm <= 1, so Z' = V V^T is feasible (PSD, diag <= 1). For a bipartite
    P = [[0, B], [B^T, 0]] whose first block has `rows` rows, Z' is then improved by block-coordinate
    ascent: with V = [U; W], U <- rownormalise(B W) then W <- rownormalise(B^T U) each maximise
    <P, V V^T> = 2 <B, U W^T> over one block exactly, so the value never drops and stays feasible
    (SCS at a loose tolerance lands a few percent below the optimum; this closes most of the gap).
    Together with `eigen_value_bound` of any dual it brackets the SDP optimum without trusting the solver.

    Args:
        p: the symmetric matrix of `max <P, Z> s.t. diag(Z) <= 1, Z PSD`.
        z: an approximate primal solution (e.g. `sdp_dual(p)[2]`).
        rows: size of the first block when P is bipartite (`pair_matrix`: 1 + hidden units); None skips
            the improvement.
        steps: block-ascent rounds.
    """
    p = np.asarray(p, np.float64)
    z = (np.asarray(z, np.float64) + np.asarray(z, np.float64).T) / 2
    values, vectors = np.linalg.eigh(z)
    keep = values > 0
    factor = vectors[:, keep] * np.sqrt(values[keep])

    def unit_rows(m, old):
        norms = np.linalg.norm(m, axis=1, keepdims=True)
        # a zero row has no best direction: keep the old (feasible) row
        return np.where(norms > 0, m / np.maximum(norms, 1e-300), old)

    norms = np.linalg.norm(factor, axis=1, keepdims=True)
    factor = factor / np.maximum(norms, 1.0)
    if rows is not None and factor.shape[1] > 0:
        b = p[:rows, rows:]
        u, w = factor[:rows], factor[rows:]
        for _ in range(steps):
            u = unit_rows(b @ w, u)
            w = unit_rows(b.T @ u, w)
        factor = np.vstack([u, w])
    # rounding can leave a norm a hair above 1: shrink by a relative 1e-12 to stay feasible
    factor = factor / np.maximum(np.linalg.norm(factor, axis=1, keepdims=True) * (1 + 1e-12), 1.0)
    return float(np.sum(p * (factor @ factor.T)))


