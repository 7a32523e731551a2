"""Certificates: a class kept over every input of a box, of a flow-field threat set, or of an Linf ball."""
from __future__ import annotations

import concurrent.futures
import dataclasses

import keras
import numpy as np

from keras_attdef.certify.domain import check_domain, network_slack
from keras_attdef.certify.dual import SAFETY, pair_block, pair_bound, relaxation_lower_bound
from keras_attdef.certify.network import as_weights, two_layer_weights
from keras_attdef.inputs import check_labels

TINY_RADIUS = 1e-5  # inputs with a smaller radius are bounded by a Lipschitz term instead of the SDP


@dataclasses.dataclass
class Certificate:
    """Per class j != label: `upper[j]` bounds max f_j - f_label over the box; `certified` if all < 0."""

    label: int
    upper: dict
    certified: bool
    method: str


def certify_box(model_or_weights, low, high, label: int, method: str = "eigen", iterations: int = 50,
                stop_at_failure: bool = False, clip_min: float = 0.0, clip_max: float = 1.0) -> Certificate:
    """Certifies that no input in [low, high] (flattened like the model's input) changes the class `label`.

    The statement covers the network evaluated in IEEE float32 (`domain.network_slack` is added to every
    margin), not only in exact arithmetic.

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
        clip_min: smallest valid input value: the box's centre must be inside [clip_min, clip_max] (the box
            may reach past it).
        clip_max: largest valid input value.

    Returns:
        A `Certificate`.

    Raises:
        ValueError: bounds of the wrong size, NaN or reversed, or a centre outside [clip_min, clip_max].
    """
    weights = as_weights(model_or_weights)
    w, b, v_all, c_all = weights
    low = np.asarray(low, np.float64).reshape(-1)
    high = np.asarray(high, np.float64).reshape(-1)
    if low.shape != high.shape or low.size != w.shape[1]:
        raise ValueError(f"Bounds of size {low.size} do not fit a network with {w.shape[1]} inputs.")
    if np.any(high < low) or not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise ValueError("Bounds must be finite and every upper bound >= its lower bound.")
    if method not in ("eigen", "sdp"):
        raise ValueError(f"method must be 'eigen' or 'sdp', got {method!r}.")
    centre, radius = (low + high) / 2, (high - low) / 2
    # The box itself is certified as given (parts outside the range only make it larger, so the statement
    # stays sound); a centre outside the range means inputs in other units (0-255, standardised).
    check_domain(centre, None, clip_min, clip_max, "box's centre")  # validation only: the box stays as given
    hidden = np.maximum(w @ centre + b, 0)
    margins = v_all @ hidden + c_all - (v_all[label] @ hidden + c_all[label])
    margins = margins + SAFETY * (1.0 + np.abs(v_all) @ hidden + np.abs(c_all))  # float64 rounding
    slack = network_slack(weights, low, high)
    margins = margins + slack + slack[label]  # the float32 logits of any input in the box
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

    w, _, v_all, _ = as_weights(model_or_weights)
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
    # Each worker gets one BLAS thread: multi-threaded BLAS on matrices this small only adds contention
    # (benchmarks/RESULTS.md).
    with threadpool_limits(limits=1), concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
        values = list(tqdm(pool.map(bound, range(len(pairs))), total=len(pairs), disable=not progress,
                           desc="pair bounds"))
    for (i, j), value in zip(pairs, values):
        table[i, j] = value
    return table


def certified_by_table(logits, labels, table, slack=None):
    """Boolean per sample: correct and f_j - f_y + B[y, j] / 4 < 0 for every j != y (see `pair_bounds`).

    Args:
        logits: the float32 logits of the box centres.
        labels: the labels.
        table: `pair_bounds`' table.
        slack: per sample and class, a float32 error bound of the logits (`table_slack`); without it the
            statement is about the network in exact arithmetic at the centre's exact logits.
    """
    logits, labels = np.asarray(logits, np.float64), np.asarray(labels)
    rows = np.arange(len(labels))
    worst = logits - logits[rows, labels][:, None] + 0.25 * table[labels]
    if slack is not None:
        worst = worst + slack + slack[rows, labels][:, None]
    worst[rows, labels] = -np.inf
    return (worst.max(-1) < 0) & (logits.argmax(-1) == labels)


def table_slack(model_or_weights, x, radius, clip_min: float = 0.0, clip_max: float = 1.0) -> np.ndarray:
    """Per image and class, the float32 error bound `certified_by_table` needs for boxes x +- radius.

    It covers both the float32 logits of the centre (against exact ones) and the float32 evaluation of any
    input of the box.

    Raises:
        ValueError: images not in [clip_min, clip_max] or not of the network's input size.
    """
    weights = as_weights(model_or_weights)
    x = check_domain(x, (None, *np.shape(x)[1:]), clip_min, clip_max).reshape(len(x), -1)
    if x.shape[1] != weights[0].shape[1]:
        raise ValueError(f"Images of {x.shape[1]} values do not fit a network with {weights[0].shape[1]} inputs.")
    return np.stack([network_slack(weights, image, image) + network_slack(weights, image - radius, image + radius)
                     for image in x])


def certify_flow(model_or_weights, x, label: int, budget: float | None = None, rho=None,
                 method: str = "eigen", iterations: int = 50, stop_at_failure: bool = False,
                 clip_min: float = 0.0, clip_max: float = 1.0) -> Certificate:
    """Certifies one image against every flow of the threat set.

    Threat set: per-pixel flows with |du_i|, |dv_i| <= rho_i; with `budget`, rho_i comes from the
    ellipsoid ||N vec(r)||_2 <= budget (N: zero-padded neighbour differences), which contains every flow
    whose stAdv flow loss is <= budget. Exact warp intervals turn the flows into a pixel box.

    Args:
        model_or_weights: dense-relu-dense Keras model or its `(W, b, V, c)`.
        x: one image `(h, w, c)` in [clip_min, clip_max] (undo any normalisation first).
        label: its class.
        budget: flow-loss budget (ellipsoid), or
        rho: a per-pixel box (number or `(h, w)` array) instead.
        method: `"eigen"` or `"sdp"`.
        iterations: optimiser iterations per class pair.
        stop_at_failure: see `certify_box`.
        clip_min: smallest valid pixel value (warped pixels are clipped to the range).
        clip_max: largest valid pixel value.

    Raises:
        ValueError: not one image of the network's input size, NaN or values outside [clip_min, clip_max],
            both or neither of budget and rho, a negative budget, an image too large for the ellipsoid
            box (`flow.ellipsoid_box`), or flows wider than the image.
    """
    from keras_attdef.certify.intervals import warp_intervals
    from keras_attdef.flow import ellipsoid_box

    weights = as_weights(model_or_weights)
    x = np.asarray(x, np.float64)
    if x.ndim != 3 or x.size != weights[0].shape[1]:
        raise ValueError(f"Expected one image (h, w, c) of {weights[0].shape[1]} values (the network's input), "
                         f"got shape {x.shape}.")
    x = check_domain(x, x.shape, clip_min, clip_max, "image")
    if (budget is None) == (rho is None):
        raise ValueError("Give exactly one of budget (flow-loss ellipsoid) or rho (per-pixel box).")
    if rho is None:
        rho = ellipsoid_box(x.shape[0], x.shape[1], budget)
    low, high = warp_intervals(x[None], rho, clip_min=clip_min, clip_max=clip_max)
    return certify_box(weights, np.clip(low, clip_min, clip_max), np.clip(high, clip_min, clip_max), label,
                       method, iterations, stop_at_failure, clip_min, clip_max)


def certify_images(model: keras.Model, x, y, budget: float | None = None, rho=None, method: str = "eigen",
                   iterations: int = 50, progress: bool = True, clip_min: float = 0.0,
                   clip_max: float = 1.0) -> np.ndarray:
    """Per image: correctly classified and certified (`certify_flow`, stopping at the first failing class).

    Raises:
        ValueError: images not shaped `(n, *model input)`, NaN or out of [clip_min, clip_max]; labels not
            one per image or out of the class range; or any error of `certify_flow`.

    Example:

    >>> import numpy as np
    >>> from keras_attdef import certify, models
    >>> net = models.two_layer_dense(8, input_shape=(5, 5, 1))
    >>> certify.certify_images(net, np.zeros((2, 5, 5, 1)), [0, 1], budget=0.1, progress=False).shape
    (2,)
    """
    from tqdm.auto import tqdm

    weights = two_layer_weights(model)
    x = check_domain(x, (None, *model.input_shape[1:]), clip_min, clip_max)
    y = check_labels(np.asarray(y), x, num_classes=weights[2].shape[0]).numpy()
    predictions = np.argmax(model.predict(x.astype(np.float32), verbose=0), -1)
    certified = np.zeros(len(x), bool)
    for i in tqdm(range(len(x)), disable=not progress, desc="certify", unit="image"):
        if predictions[i] == int(y[i]):
            certified[i] = certify_flow(weights, x[i], int(y[i]), budget, rho, method, iterations,
                                        stop_at_failure=True, clip_min=clip_min, clip_max=clip_max).certified
    return certified


def certified_accuracy(model: keras.Model, x, y, budget: float | None = None, rho=None, method: str = "eigen",
                       progress: bool = True, clip_min: float = 0.0, clip_max: float = 1.0) -> float:
    """Share of images that are correctly classified and certified (see `certify_images`)."""
    return float(np.mean(certify_images(model, x, y, budget, rho, method, progress=progress, clip_min=clip_min,
                                        clip_max=clip_max)))
