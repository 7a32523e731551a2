"""The eigenvalue (SDP-dual) bound on the margin of a two-layer ReLU network over a box of inputs.

For f(x) = V relu(W x + b) + c and inputs in the box [low, high] (centre x0, radius r per coordinate),
with v = V_j - V_y the margin of class j over the label y satisfies (Raghunathan, Steinhardt and Liang,
2018, with per-coordinate radii)

    f_j(x) - f_y(x) <= f_j(x0) - f_y(x0) + 1/4 * max_{z in [-1, 1]^n} z^T P z,

    P = [[0,              0,          1^T diag(v) W'],
         [0,              0,          diag(v) W'    ],
         [W'^T diag(v) 1, W'^T diag(v), 0           ]],    W' = W diag(r)

z = (constant, hidden slope, input direction): the relu's slope between x0 and x lies in [0, 1] and is
written as (1 + s) / 2, s in [-1, 1]; the constant row couples to the INPUT block. Coordinates with zero
radius drop out exactly. For any vector c,

    max_{z in [-1,1]^n} z^T P z <= n * max(lambda_max(P - diag(c)), 0) + sum(max(c, 0)),

which also bounds the SDP relaxation (max <P, Z>, diag(Z) <= 1, Z PSD); `eigen_value_bound` applies it at
c + lambda_max * 1. P is bipartite, P = [[0, B], [B^T, 0]], so with c = (c1, c2) > 0 the best scaling
gives 2 * ||D1^-1/2 B D2^-1/2||_2 * sqrt(sum c1 * sum c2) (`bipartite_bound`), which `optimise_bipartite`
minimises. Either number is computed in float64 from a full eigen-decomposition plus a safety margin,
whatever duals an optimiser, training or SCS supplied; SCS's own objective is never reported.
"""
from __future__ import annotations

import numpy as np
import scipy.optimize

from keras_attdef.certify.sdp import sdp_dual

SAFETY = 1e-7  # relative margin added to every eigenvalue bound for float64 rounding


def pair_block(w, v, radius):
    """B of the bipartite P = [[0, B], [B^T, 0]] for margin direction v (hidden,) and radius (inputs,).

    Rows: the constant, then the hidden units; columns: the inputs with non-zero radius (the others
    drop out exactly). B = [1^T diag(v) W'; diag(v) W'] with W' = W diag(radius).
    """
    active = radius > 0
    vw = v[:, None] * (w[:, active] * radius[active])   # diag(v) W'
    return np.vstack([vw.sum(axis=0, keepdims=True), vw])  # the constant row couples to the INPUT block


def pair_matrix(w, v, radius):
    """P for margin direction v (hidden,) and per-input radius (inputs,); zero-radius inputs dropped."""
    block = pair_block(w, v, radius)
    rows, cols = block.shape
    p = np.zeros((rows + cols, rows + cols))
    p[:rows, rows:] = block
    p[rows:, :rows] = block.T
    return p


def relaxation_lower_bound(block, rounds: int = 10) -> float:
    """A value the relaxation reaches: 2 x^T B y at sign vectors x, y (alternating maximisation).

    z = (x, y) in {-1, 1}^n is feasible for max z^T P z, so every upper bound of it (eigenvalue dual,
    SDP) is at least this: when the margin plus a quarter of it is >= 0, no bound of this family can
    certify, and the optimisation can be skipped.
    """
    if block.shape[1] == 0:
        return 0.0
    y = np.where(block[np.argmax(np.abs(block).sum(1))] >= 0, 1.0, -1.0)
    for _ in range(rounds):
        x = np.where(block @ y >= 0, 1.0, -1.0)
        y = np.where(block.T @ x >= 0, 1.0, -1.0)
    return float(2 * x @ block @ y)


def pair_bound(w, v, radius, method: str = "eigen", iterations: int = 50, start=None) -> float:
    """Sound upper bound of max z^T P z over z in [-1, 1]^n; the margin can grow by a quarter of it.

    Args:
        w: first-layer weights `(hidden, inputs)`.
        v: margin direction over the hidden units, V_j - V_label.
        radius: per-input radius of the box.
        method: `"eigen"` (bipartite dual optimised by L-BFGS, checked in float64) or `"sdp"` (cvxpy + SCS,
            its dual re-checked by `eigen_value_bound`; raises `SolverError` if SCS did not converge).
        iterations: L-BFGS iterations for `"eigen"`.
        start: optional `(c1, c2)` starting duals for `"eigen"`.
    """
    block = pair_block(w, v, np.asarray(radius, np.float64))
    if block.shape[1] == 0 or not np.any(block):
        return 0.0
    if method == "eigen":
        return bipartite_bound(block, *optimise_bipartite(block, iterations, start))
    if method == "sdp":
        p = pair_matrix(w, v, np.asarray(radius, np.float64))
        return eigen_value_bound(p, sdp_dual(p)[0])  # sound whatever SCS's accuracy
    raise ValueError(f"method must be 'eigen' or 'sdp', got {method!r}.")


def eigen_value_bound(p, c):
    """The bound at c shifted by lambda = lambda_max(P - diag(c)): sum(max(c + lambda, 0)), in float64.

    Shifting c by lambda makes the top eigenvalue 0, and the result is never above the unshifted
    n * max(lambda, 0) + sum(max(c, 0)) (the optimisers move c along the all-ones direction freely).
    A safety margin covers float64 rounding of the eigenvalue.
    """
    n = p.shape[0]
    c = np.asarray(c, np.float64)
    top = float(np.linalg.eigvalsh(p - np.diag(c))[-1])
    bound = float(np.maximum(c + top, 0).sum())
    return bound + SAFETY * (1.0 + abs(bound) + n * np.abs(p).max())


def bipartite_bound(b, c1, c2):
    """Sound bound from positive duals (c1, c2) of the bipartite P = [[0, B], [B^T, 0]], in float64.

    With sigma = ||D1^-1/2 B D2^-1/2||_2, the vector c = (alpha c1, beta c2) with alpha * beta = sigma^2
    satisfies diag(c) >= P, so max_{z in box} z^T P z <= sum(c); the best split gives
    2 * sigma * sqrt(sum(c1) * sum(c2)). sigma^2 is the top eigenvalue of the smaller Gram matrix
    (a full float64 decomposition), widened by a safety margin.
    """
    c1, c2 = np.asarray(c1, np.float64), np.asarray(c2, np.float64)
    if np.any(c1 <= 0) or np.any(c2 <= 0) or not (np.all(np.isfinite(c1)) and np.all(np.isfinite(c2))):
        raise ValueError("bipartite_bound needs finite, strictly positive duals.")
    scaled = b / np.sqrt(c1)[:, None] / np.sqrt(c2)[None]
    gram = scaled @ scaled.T if scaled.shape[0] <= scaled.shape[1] else scaled.T @ scaled
    top = max(float(np.linalg.eigvalsh(gram)[-1]), 0.0)
    top += SAFETY * (1.0 + top + gram.shape[0] * np.abs(gram).max())
    return 2.0 * np.sqrt(top) * np.sqrt(c1.sum() * c2.sum())


_DENSE_GRAM = 16  # rows up to which a full eigh beats ARPACK (measured on this project's CPU)


def _top_singular(scaled, guess=None):
    """Top singular value and unit vectors of a dense matrix, from the smaller Gram matrix.

    Lanczos (ARPACK) for the top eigenpair of the Gram matrix, started from `guess` (the previous
    singular vector of the optimiser, which changes little between L-BFGS steps): much cheaper than a
    dense decomposition of a large Gram matrix. Up to `_DENSE_GRAM` rows, and when ARPACK does not
    converge, a dense `eigh` (ARPACK's set-up costs more than a full decomposition of a small matrix:
    0.2 against 0.01 ms at 4 rows). Only the optimiser uses it; the reported bound is re-checked by
    `bipartite_bound` with a full `eigvalsh`.
    """
    import scipy.linalg
    import scipy.sparse.linalg

    rows_first = scaled.shape[0] <= scaled.shape[1]
    gram = scaled @ scaled.T if rows_first else scaled.T @ scaled
    k = gram.shape[0]
    values = None
    if k > _DENSE_GRAM:
        v0 = guess if guess is not None and guess.shape == (k,) and np.any(guess) else None
        try:
            values, vectors = scipy.sparse.linalg.eigsh(gram, k=1, which="LA", tol=1e-10, v0=v0)
        except scipy.sparse.linalg.ArpackNoConvergence:
            pass
    if values is None:
        values, vectors = (np.linalg.eigh(gram) if k <= _DENSE_GRAM
                           else scipy.linalg.eigh(gram, subset_by_index=[k - 1, k - 1]))
    first = vectors[:, -1]
    second = scaled.T @ first if rows_first else scaled @ first
    x, y = (first, second) if rows_first else (second, first)
    sigma = float(np.sqrt(max(values[-1], 0.0)))
    x, y = x / (np.linalg.norm(x) + 1e-300), y / (np.linalg.norm(y) + 1e-300)
    return sigma, x, y


def optimise_bipartite(b, iterations: int = 50, start=None):
    """Positive duals (c1, c2) for `bipartite_bound`, by L-BFGS-B on log(bound) over log c.

    d log(bound) / d log c1_i = c1_i / (2 sum c1) - x_i^2 / 2 (x, y the top singular vectors of
    D1^-1/2 B D2^-1/2), and likewise for c2; the optimum balances the duals with the squared singular
    vectors. Starts from the row and column sums of |B| (or `start`, e.g. duals learnt in training).
    Zero rows and columns of B get a tiny dual and drop out.
    """
    rows, cols = b.shape
    if start is None:
        start = (np.abs(b).sum(1), np.abs(b).sum(0))
    c1, c2 = (np.asarray(c, np.float64) for c in start)
    floor = 1e-9 * max(float(np.max(c1)), float(np.max(c2)), 1e-300)
    theta0 = np.log(np.maximum(np.concatenate([c1, c2]), floor))
    if iterations <= 0:  # the starting point only (certify_box's quick check): no solver calls
        c = np.exp(theta0)
        return c[:rows], c[rows:]

    guess = {}

    def objective(theta):
        c = np.exp(theta)
        a1, a2 = c[:rows], c[rows:]
        sigma, x, y = _top_singular(b / np.sqrt(a1)[:, None] / np.sqrt(a2)[None], guess.get("vector"))
        guess["vector"] = x if rows <= cols else y
        s1, s2 = a1.sum(), a2.sum()
        value = np.log(2 * sigma + 1e-300) + 0.5 * np.log(s1) + 0.5 * np.log(s2)
        grad = np.concatenate([a1 / (2 * s1) - x * x / 2, a2 / (2 * s2) - y * y / 2])
        return value, grad

    result = scipy.optimize.minimize(objective, theta0, jac=True, method="L-BFGS-B",
                                     options={"maxiter": iterations})
    best = result.x if result.fun < objective(theta0)[0] else theta0
    c = np.exp(best)
    return c[:rows], c[rows:]


def optimise_dual(p, iterations: int = 50):
    """A diagonal dual c for `eigen_value_bound` of any P (L-BFGS-B from the Gershgorin point).

    For the certificate's bipartite P, `optimise_bipartite` is faster and tighter; this general form
    serves other matrices and tests.
    """
    import scipy.linalg

    n = p.shape[0]
    start = np.abs(p).sum(axis=1)

    def objective(c):
        values, vectors = scipy.linalg.eigh(p - np.diag(c), subset_by_index=[n - 1, n - 1])
        top, u = values[-1], vectors[:, -1]
        value = n * max(top, 0.0) + np.maximum(c, 0).sum()
        grad = (c > 0).astype(float) - (n * u * u if top > 0 else 0.0)
        return value, grad

    result = scipy.optimize.minimize(objective, start, jac=True, method="L-BFGS-B",
                                     options={"maxiter": iterations})
    return result.x if result.fun < objective(start)[0] else start


