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

which also bounds the SDP relaxation (max <P, Z>, diag(Z) <= 1, Z PSD). This is the number reported:
computed in float64 from a full eigen-decomposition, plus a safety margin, whatever c an optimiser (or
SCS's dual) supplied; SCS's own objective is never reported.
"""
from __future__ import annotations

import dataclasses

import keras
import numpy as np
import scipy.optimize

SAFETY = 1e-7  # relative margin added to every eigenvalue bound for float64 rounding


class NotTwoLayerError(ValueError):
    """The model is not Flatten? -> Dense(relu) -> Dense(linear)."""


class SolverError(RuntimeError):
    """The SDP solver did not reach an optimal status: no certificate is given."""


def two_layer_weights(model: keras.Model):
    """`(W, b, V, c)` in float64 from a dense-relu-dense Keras model (W: hidden x inputs).

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
    kernel1, bias1 = (np.asarray(w, np.float64) for w in dense[0].get_weights())
    kernel2, bias2 = (np.asarray(w, np.float64) for w in dense[1].get_weights())
    return kernel1.T, bias1, kernel2.T, bias2


def pair_matrix(w, v, radius):
    """P for margin direction v (hidden,) and per-input radius (inputs,); zero-radius inputs dropped."""
    active = radius > 0
    scaled = w[:, active] * radius[active]           # W' = W diag(r), active columns
    vw = v[:, None] * scaled                          # diag(v) W'
    m, d = vw.shape
    n = 1 + m + d
    p = np.zeros((n, n))
    p[0, 1 + m:] = vw.sum(axis=0)                     # 1^T diag(v) W'  (constant row -> input block)
    p[1:1 + m, 1 + m:] = vw
    p[1 + m:, :] = p[:, 1 + m:].T
    return p


def eigen_value_bound(p, c):
    """n * max(lambda_max(P - diag(c)), 0) + sum(max(c, 0)), in float64 with a safety margin."""
    n = p.shape[0]
    top = float(np.linalg.eigvalsh(p - np.diag(c))[-1])
    bound = n * max(top, 0.0) + float(np.maximum(c, 0).sum())
    return bound + SAFETY * (1.0 + abs(bound) + n * np.abs(p).max())


def optimise_dual(p, iterations: int = 50):
    """A good c for `eigen_value_bound` (L-BFGS-B from the Gershgorin point, where the bound is sum |P|).

    The gradient of lambda_max is the outer product of its top eigenvector, so each step needs only the
    top eigenpair; whatever c comes out, `eigen_value_bound` re-checks it with a full decomposition.
    """
    import scipy.linalg

    n = p.shape[0]
    start = np.abs(p).sum(axis=1)

    def top_pair(matrix):
        values, vectors = scipy.linalg.eigh(matrix, subset_by_index=[n - 1, n - 1])
        return values[-1], vectors[:, -1]

    def objective(c):
        top, u = top_pair(p - np.diag(c))
        value = n * max(top, 0.0) + np.maximum(c, 0).sum()
        grad = (c > 0).astype(float) - (n * u * u if top > 0 else 0.0)
        return value, grad

    result = scipy.optimize.minimize(objective, start, jac=True, method="L-BFGS-B",
                                     options={"maxiter": iterations})
    best = result.x if result.fun < objective(start)[0] else start
    return best


def sdp_dual(p, eps: float = 1e-7, max_iters: int = 100_000):
    """Solves max <P, Z> s.t. diag(Z) <= 1, Z PSD with cvxpy + SCS; returns the diagonal dual c.

    Raises:
        SolverError: the solver's status is not optimal.
    """
    import cvxpy as cp

    n = p.shape[0]
    z = cp.Variable((n, n), PSD=True)
    diag = cp.diag(z) <= 1
    problem = cp.Problem(cp.Maximize(cp.sum(cp.multiply(p, z))), [diag])
    problem.solve(solver=cp.SCS, eps=eps, max_iters=max_iters)
    if problem.status != "optimal" or diag.dual_value is None:
        raise SolverError(f"SCS ended with status {problem.status!r}; no certificate. Raise max_iters or eps.")
    return np.asarray(diag.dual_value, np.float64), float(problem.value)


@dataclasses.dataclass
class Certificate:
    """Per class j != label: `upper[j]` bounds max f_j - f_label over the box; `certified` if all < 0."""

    label: int
    upper: dict
    certified: bool
    method: str


def certify_box(model_or_weights, low, high, label: int, method: str = "eigen") -> Certificate:
    """Certifies that no input in [low, high] (flattened like the model's input) changes the class `label`.

    Args:
        model_or_weights: a dense-relu-dense Keras model or its `(W, b, V, c)`.
        low: lower bounds per input.
        high: upper bounds per input.
        label: the class to keep.
        method: `"eigen"` (optimised eigenvalue bound, fast) or `"sdp"` (cvxpy + SCS, its dual re-checked).

    Returns:
        A `Certificate`.
    """
    w, b, v_all, c_all = (two_layer_weights(model_or_weights) if isinstance(model_or_weights, keras.Model)
                          else model_or_weights)
    low = np.asarray(low, np.float64).reshape(-1)
    high = np.asarray(high, np.float64).reshape(-1)
    if low.shape != high.shape or low.size != w.shape[1]:
        raise ValueError(f"Bounds of size {low.size} do not fit a network with {w.shape[1]} inputs.")
    if np.any(high < low):
        raise ValueError("Every upper bound must be >= its lower bound.")
    centre, radius = (low + high) / 2, (high - low) / 2
    hidden = np.maximum(w @ centre + b, 0)
    upper = {}
    for j in range(v_all.shape[0]):
        if j == label:
            continue
        v = v_all[j] - v_all[label]
        base = float(v @ hidden + c_all[j] - c_all[label])
        p = pair_matrix(w, v, radius)
        if method == "eigen":
            dual = optimise_dual(p)
        elif method == "sdp":
            dual, _ = sdp_dual(p)
        else:
            raise ValueError(f"method must be 'eigen' or 'sdp', got {method!r}.")
        upper[j] = base + 0.25 * eigen_value_bound(p, dual)
    return Certificate(int(label), upper, all(u < 0 for u in upper.values()), method)


def certify_flow(model: keras.Model, x, label: int, budget: float | None = None, rho=None,
                 method: str = "eigen") -> Certificate:
    """Certifies one image against every flow of the threat set.

    Threat set: per-pixel flows with |du_i|, |dv_i| <= rho_i; with `budget`, rho_i comes from the
    ellipsoid ||N vec(r)||_2 <= budget (N: zero-padded neighbour differences), which contains every flow
    whose stAdv flow loss is <= budget. Exact warp intervals turn the flows into a pixel box.

    Args:
        model: dense-relu-dense Keras model.
        x: one image `(h, w, c)` in [0, 1].
        label: its class.
        budget: flow-loss budget (ellipsoid), or
        rho: a per-pixel box (number or `(h, w)` array) instead.
        method: `"eigen"` or `"sdp"`.
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
    return certify_box(model, np.clip(low, 0, 1), np.clip(high, 0, 1), label, method)


def certified_accuracy(model: keras.Model, x, y, budget: float | None = None, rho=None, method: str = "eigen",
                       progress: bool = True) -> float:
    """Share of images that are correctly classified and certified (see `certify_flow`)."""
    from tqdm.auto import tqdm

    predictions = np.argmax(model.predict(np.asarray(x, np.float32), verbose=0), -1)
    certified = []
    for image, label, pred in tqdm(zip(x, y, predictions), total=len(x), disable=not progress, desc="certify"):
        certified.append(pred == label and certify_flow(model, image, int(label), budget, rho, method).certified)
    return float(np.mean(certified))
