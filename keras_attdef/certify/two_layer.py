"""Sound upper bounds on the margin of a two-layer ReLU network over a box of inputs.

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

import concurrent.futures
import dataclasses

import keras
import numpy as np
import scipy.optimize

SAFETY = 1e-7  # relative margin added to every eigenvalue bound for float64 rounding
TINY_RADIUS = 1e-5  # inputs with a smaller radius are bounded by a Lipschitz term instead of the SDP


class NotTwoLayerError(ValueError):
    """The model is not Flatten? -> Dense(relu) -> Dense(linear)."""


class SolverError(RuntimeError):
    """The SDP solver did not reach an optimal status: no certificate is given."""


def dense_layers(model: keras.Model):
    """The two Dense layers of a dense-relu-dense Keras model (graph-safe: no weights are read).

    Raises:
        NotTwoLayerError: any other architecture, saying what was found.
    """
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    others = [layer for layer in model.layers
              if not isinstance(layer, (keras.layers.Dense, keras.layers.Flatten, keras.layers.InputLayer))]
    activations = [getattr(layer.activation, "__name__", str(layer.activation)) for layer in dense]
    if len(dense) != 2 or others or activations != ["relu", "linear"]:
        raise NotTwoLayerError(
            f"The certificate covers f(x) = V relu(W x + b) + c: Flatten, Dense(relu), Dense(linear). Model "
            f"{model.name!r} has dense layers with activations {activations} and other layers "
            f"{[type(layer).__name__ for layer in others]}. Build it with models.two_layer_dense."
        )
    return dense


def two_layer_weights(model: keras.Model):
    """`(W, b, V, c)` in float64 from a dense-relu-dense Keras model (W: hidden x inputs).

    Raises:
        NotTwoLayerError: any other architecture, saying what was found.
    """
    first, second = dense_layers(model)
    kernel1, bias1 = (np.asarray(w, np.float64) for w in first.get_weights())
    kernel2, bias2 = (np.asarray(w, np.float64) for w in second.get_weights())
    return kernel1.T, bias1, kernel2.T, bias2


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


def _top_singular(scaled, guess=None):
    """Top singular value and unit vectors of a dense matrix, from the smaller Gram matrix.

    Lanczos (ARPACK) for the top eigenpair of the Gram matrix, started from `guess` (the previous
    singular vector of the optimiser, which changes little between L-BFGS steps): ~10x cheaper than a
    dense decomposition at 500x500. Falls back to the dense `eigh` when ARPACK does not converge. Only
    the optimiser uses it; the reported bound is re-checked by `bipartite_bound` with a full `eigvalsh`.
    """
    import scipy.linalg
    import scipy.sparse.linalg

    rows_first = scaled.shape[0] <= scaled.shape[1]
    gram = scaled @ scaled.T if rows_first else scaled.T @ scaled
    k = gram.shape[0]
    values = None
    if k >= 3:  # ARPACK needs more than k=1 rows
        v0 = guess if guess is not None and guess.shape == (k,) and np.any(guess) else None
        try:
            values, vectors = scipy.sparse.linalg.eigsh(gram, k=1, which="LA", tol=1e-10, v0=v0)
        except scipy.sparse.linalg.ArpackNoConvergence:
            pass
    if values is None:
        values, vectors = scipy.linalg.eigh(gram, subset_by_index=[k - 1, k - 1])
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


@dataclasses.dataclass
class Certificate:
    """Per class j != label: `upper[j]` bounds max f_j - f_label over the box; `certified` if all < 0."""

    label: int
    upper: dict
    certified: bool
    method: str


def _weights(model_or_weights):
    if isinstance(model_or_weights, keras.Model):
        return two_layer_weights(model_or_weights)
    return tuple(np.asarray(t, np.float64) for t in model_or_weights)


def certify_box(model_or_weights, low, high, label: int, method: str = "eigen", iterations: int = 50,
                stop_at_failure: bool = False) -> Certificate:
    """Certifies that no input in [low, high] (flattened like the model's input) changes the class `label`.

    Args:
        model_or_weights: a dense-relu-dense Keras model or its `(W, b, V, c)`.
        low: lower bounds per input.
        high: upper bounds per input.
        label: the class to keep.
        method: `"eigen"` (optimised eigenvalue bound, fast) or `"sdp"` (cvxpy + SCS, its dual re-checked).
        iterations: optimiser iterations per class pair (`"eigen"`).
        stop_at_failure: stop at the first class that cannot be certified (it and the classes not
            reached get `inf`): its bound is >= 0, or a point of the relaxation already exceeds the
            margin (`relaxation_lower_bound`). Pairs whose bound at the starting duals certifies skip
            the optimisation.

    Returns:
        A `Certificate`.
    """
    w, b, v_all, c_all = _weights(model_or_weights)
    low = np.asarray(low, np.float64).reshape(-1)
    high = np.asarray(high, np.float64).reshape(-1)
    if low.shape != high.shape or low.size != w.shape[1]:
        raise ValueError(f"Bounds of size {low.size} do not fit a network with {w.shape[1]} inputs.")
    if np.any(high < low) or not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise ValueError("Bounds must be finite and every upper bound >= its lower bound.")
    if method not in ("eigen", "sdp"):
        raise ValueError(f"method must be 'eigen' or 'sdp', got {method!r}.")
    centre, radius = (low + high) / 2, (high - low) / 2
    hidden = np.maximum(w @ centre + b, 0)
    margins = v_all @ hidden + c_all - (v_all[label] @ hidden + c_all[label])
    margins = margins + SAFETY * (1.0 + np.abs(v_all) @ hidden + np.abs(c_all))  # float64 rounding
    # Inputs whose radius is only the rounding margin (e.g. background pixels no flow can change) leave
    # the SDP; the relu is 1-Lipschitz, so they move margin j by at most sum_k r_k |V_j - V_label| |W_:k|.
    tiny = radius <= TINY_RADIUS
    if np.any(tiny):
        spread = np.abs(v_all - v_all[label]) @ (np.abs(w[:, tiny]) @ radius[tiny])
        margins = margins + spread
        radius = np.where(tiny, 0.0, radius)
    upper = {j: np.inf for j in range(v_all.shape[0]) if j != label}
    for j in sorted(upper, key=lambda k: -margins[k]):  # the closest class first: it fails first
        v = v_all[j] - v_all[label]
        if stop_at_failure:
            if margins[j] + 0.25 * relaxation_lower_bound(pair_block(w, v, radius)) >= 0:
                break  # no bound of this family certifies this pair: upper stays inf
            if method == "eigen":
                quick = margins[j] + 0.25 * pair_bound(w, v, radius, method, iterations=0)
                if quick < 0:
                    upper[j] = quick
                    continue
        upper[j] = margins[j] + 0.25 * pair_bound(w, v, radius, method, iterations)
        if stop_at_failure and upper[j] >= 0:
            break
    upper = {j: float(u) for j, u in sorted(upper.items())}
    return Certificate(int(label), upper, all(u < 0 for u in upper.values()), method)


def pair_bounds(model_or_weights, radius, method: str = "eigen", iterations: int = 50, progress: bool = False,
                starts=None, workers: int = 2):
    """Bounds for every ordered class pair over one input box radius (the Linf case: no dependence on x).

    Args:
        model_or_weights: a dense-relu-dense Keras model or its `(W, b, V, c)`.
        radius: per-input radius (or one number); inputs with zero radius drop out.
        method: `"eigen"` or `"sdp"` (see `pair_bound`).
        iterations: optimiser iterations per pair.
        progress: show a progress bar.
        starts: optional starting duals `(c1, c2)` per pair, in `relaxation.class_pairs` order (c2 over all
            inputs), e.g. `CertifiedTraining.duals.numpy_duals()`: a warm start.
        workers: pairs bounded in parallel threads.

    Returns:
        `(k, k)` array B with B[y, j] bounding max z^T P z for label y and class j (0 on the diagonal):
        x is certified when f_j(x) - f_y(x) + B[y, j] / 4 < 0 for every j != y.
    """
    from tqdm.auto import tqdm

    w, _, v_all, _ = _weights(model_or_weights)
    radius = np.broadcast_to(np.asarray(radius, np.float64), (w.shape[1],))
    k = v_all.shape[0]
    table = np.zeros((k, k))
    pairs = [(i, j) for i in range(k) for j in range(k) if i != j]
    active = radius > 0

    def bound(n):
        i, j = pairs[n]
        start = None if starts is None else (starts[0][n], starts[1][n][active])
        return pair_bound(w, v_all[j] - v_all[i], radius, method, iterations, start)

    from threadpoolctl import threadpool_limits

    # LAPACK and BLAS release the GIL: threads keep both cores busy on the many small decompositions.
    # Each worker gets one BLAS thread: multi-threaded BLAS on 500x500 matrices only adds contention
    # (measured 2x slower on 2 cores than one single-threaded worker pinned to one core).
    with threadpool_limits(limits=1), concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
        values = list(tqdm(pool.map(bound, range(len(pairs))), total=len(pairs), disable=not progress,
                           desc="pair bounds"))
    for (i, j), value in zip(pairs, values):
        table[i, j] = value
    return table


def certified_by_table(logits, labels, table):
    """Boolean per sample: correct and f_j - f_y + B[y, j] / 4 < 0 for every j != y (see `pair_bounds`)."""
    logits, labels = np.asarray(logits, np.float64), np.asarray(labels)
    rows = np.arange(len(labels))
    worst = logits - logits[rows, labels][:, None] + 0.25 * table[labels]
    worst[rows, labels] = -np.inf
    return (worst.max(-1) < 0) & (logits.argmax(-1) == labels)


def certify_flow(model_or_weights, x, label: int, budget: float | None = None, rho=None,
                 method: str = "eigen", iterations: int = 50, stop_at_failure: bool = False) -> Certificate:
    """Certifies one image against every flow of the threat set.

    Threat set: per-pixel flows with |du_i|, |dv_i| <= rho_i; with `budget`, rho_i comes from the
    ellipsoid ||N vec(r)||_2 <= budget (N: zero-padded neighbour differences), which contains every flow
    whose stAdv flow loss is <= budget. Exact warp intervals turn the flows into a pixel box.

    Args:
        model_or_weights: dense-relu-dense Keras model or its `(W, b, V, c)`.
        x: one image `(h, w, c)` in [0, 1].
        label: its class.
        budget: flow-loss budget (ellipsoid), or
        rho: a per-pixel box (number or `(h, w)` array) instead.
        method: `"eigen"` or `"sdp"`.
        iterations: optimiser iterations per class pair.
        stop_at_failure: see `certify_box`.

    Raises:
        ValueError: not one image, both or neither of budget and rho, a negative budget, an image too
            large for the ellipsoid box (`flow.ellipsoid_box`), or flows wider than the image.
    """
    from keras_attdef.certify.intervals import warp_intervals
    from keras_attdef.flow import ellipsoid_box

    x = np.asarray(x, np.float64)
    if x.ndim != 3:
        raise ValueError(f"Expected one image (h, w, c), got shape {x.shape}.")
    if (budget is None) == (rho is None):
        raise ValueError("Give exactly one of budget (flow-loss ellipsoid) or rho (per-pixel box).")
    if rho is None:
        rho = ellipsoid_box(x.shape[0], x.shape[1], budget)
    low, high = warp_intervals(x[None], rho)
    return certify_box(model_or_weights, np.clip(low, 0, 1), np.clip(high, 0, 1), label, method, iterations,
                       stop_at_failure)


def certify_images(model: keras.Model, x, y, budget: float | None = None, rho=None, method: str = "eigen",
                   iterations: int = 50, progress: bool = True) -> np.ndarray:
    """Per image: correctly classified and certified (`certify_flow`, stopping at the first failing class).

    Example:

    >>> import numpy as np
    >>> from keras_attdef import certify, models
    >>> net = models.two_layer_dense(8, input_shape=(5, 5, 1))
    >>> certify.certify_images(net, np.zeros((2, 5, 5, 1)), [0, 1], budget=0.1, progress=False).shape
    (2,)
    """
    from tqdm.auto import tqdm

    weights = two_layer_weights(model)
    predictions = np.argmax(model.predict(np.asarray(x, np.float32), verbose=0), -1)
    certified = np.zeros(len(x), bool)
    for i in tqdm(range(len(x)), disable=not progress, desc="certify", unit="image"):
        if predictions[i] == int(y[i]):
            certified[i] = certify_flow(weights, x[i], int(y[i]), budget, rho, method, iterations,
                                        stop_at_failure=True).certified
    return certified


def certified_accuracy(model: keras.Model, x, y, budget: float | None = None, rho=None, method: str = "eigen",
                       progress: bool = True) -> float:
    """Share of images that are correctly classified and certified (see `certify_images`)."""
    return float(np.mean(certify_images(model, x, y, budget, rho, method, progress=progress)))
