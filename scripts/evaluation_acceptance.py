#!/usr/bin/env python
"""The evaluation suite's acceptance figures on one saved model, resumable chunk by chunk.

    python scripts/evaluation_acceptance.py runs/madry/model.keras --out runs/acceptance/madry.json
    python scripts/evaluation_acceptance.py runs/plain/model.keras --out runs/acceptance/plain.json \\
        --rows cw_l2,jsma,square_no_grad,art_cw_l2,art_jsma

Rows (each a list of per-point results, stored per chunk of --chunk points as soon as it is done):
  pgd100x5      PGD-100 with 5 random restarts (step 2.5 eps / 100)
  apgd_ce       APGD-CE, 100 steps
  apgd_ce_x5    APGD-CE, 100 steps, 5 restarts
  apgd_dlr_x5   APGD with the DLR loss, 100 steps, 5 restarts
  apgd_t        APGD-T, 9 targets x 100 steps
  fab_t         FAB-T, 9 targets x 100 steps
  square        Square, 5,000 queries
  square_seed1  Square, 5,000 queries, another seed
  autoattack    the AutoAttack-style cascade (standard version: APGD-CE, APGD-T, FAB-T, Square)
  art_apgd_ce   ART's AutoProjectedGradientDescent (cross-entropy, 100 steps): the independent check
  art_apgd_dlr  ART's APGD with the DLR loss (ours: apgd_dlr)
  apgd_dlr      ours, DLR loss, 100 steps
  art_square    ART's SquareAttack (5,000 queries)
  cw_l2         C&W-L2 (200 Adam steps at lr 0.05 x 6 search rounds from c = 0.1): success and L2 per point
  art_cw_l2     ART's CarliniL2Method on the same points
  jsma          JSMA (gamma 0.15, random targets): success and pixels changed per point
  art_jsma      ART's SaliencyMapMethod with our targets
  square_no_grad  Square on the model behind a zero-gradient input quantiser (gradient disabled)

  ta_apgd_ce, ta_apgd_t, ta_fab_t, ta_square   torchattacks' APGD (CE), APGDT (9 targets), FAB (targeted over
                9 classes) and Square (5,000 queries), 100 steps where they take steps, on a PyTorch copy of the
                model (`torch_port`, checked to give the Keras model's logits before any row runs)

ART rows need the `[crosscheck]` extra; torchattacks rows need `pip install torch torchattacks`. A summary is printed at the end (and on every resume), with the audit's paired
comparison of Square against the white-box rows together when both are among --rows.
"""
from __future__ import annotations

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

from keras_attdef import attacks, datasets
from keras_attdef.evaluation.audit import curve_checks
from keras_attdef.evaluation.autoattack import autoattack
from keras_attdef.models import predict_labels
from keras_attdef.experiments import ResultStore


CW_STEPS, CW_SEARCH, CW_LR = 200, 6, 0.05  # ours and ART's alike


def zero_gradient(net, levels: int = 255):
    """`net` behind an input quantiser with zero gradient everywhere: no white-box gradient reaches it."""
    inputs = keras.Input(net.input_shape[1:])
    rounded = keras.layers.Lambda(lambda t: tf.stop_gradient(tf.round(t * levels) / levels))(inputs)
    return keras.Model(inputs, net(rounded))


def _art(net, eps):
    from art.estimators.classification import TensorFlowV2Classifier

    return TensorFlowV2Classifier(model=net, nb_classes=int(net.output_shape[-1]), input_shape=net.input_shape[1:],
                                  clip_values=(0.0, 1.0),
                                  loss_object=keras.losses.CategoricalCrossentropy(from_logits=True))


def torch_port(net):
    """A PyTorch module computing `net`'s logits (NCHW input in [0, 1]): for attack libraries written for torch.

    Supports the chains of `models.lenet` / `small_lenet`: Conv2D ("same" or "valid", stride 1), MaxPooling2D,
    Flatten, Dense, Dropout (identity) and ReLU / linear activations.
    """
    import torch
    import torch.nn.functional as F

    steps = []
    for layer in net.layers:
        kind = type(layer).__name__
        activation = getattr(getattr(layer, "activation", None), "__name__", "linear")
        if activation not in ("relu", "linear"):
            raise ValueError(f"torch_port: activation {activation!r} of {layer.name} is not supported")
        if kind == "InputLayer" or kind == "Dropout":
            continue
        if kind == "Conv2D":
            if tuple(layer.strides) != (1, 1):
                raise ValueError(f"torch_port: strides {layer.strides} of {layer.name} are not supported")
            kernel, bias = (torch.tensor(np.asarray(w)) for w in layer.get_weights())
            padding = kernel.shape[0] // 2 if layer.padding == "same" else 0
            steps.append((lambda t, k=kernel.permute(3, 2, 0, 1).contiguous(), b=bias, p=padding:
                           F.conv2d(t, k, b, padding=p), activation))
        elif kind == "MaxPooling2D":
            steps.append((lambda t, s=layer.pool_size[0]: F.max_pool2d(t, s), "linear"))
        elif kind == "Flatten":  # Keras flattens channels-last
            steps.append((lambda t: t.permute(0, 2, 3, 1).reshape(t.shape[0], -1), "linear"))
        elif kind == "Dense":
            kernel, bias = (torch.tensor(np.asarray(w)) for w in layer.get_weights())
            steps.append((lambda t, k=kernel, b=bias: t @ k + b, activation))
        else:
            raise ValueError(f"torch_port: layer {layer.name} ({kind}) is not supported")

    class Port(torch.nn.Module):
        def forward(self, t):
            for apply, activation in steps:
                t = apply(t)
                t = torch.relu(t) if activation == "relu" else t
            return t

    return Port().eval()


def _torchattacks(net, eps, seed):
    """torchattacks rows on a PyTorch copy of `net`, after checking the copy's logits match."""
    import torch
    import torchattacks

    torch.set_num_threads(2)
    port = torch_port(net)

    def run(make):
        def row(x, y):
            images = torch.tensor(np.transpose(x, (0, 3, 1, 2)))
            with torch.no_grad():
                gap = float((port(images) - torch.tensor(np.asarray(net(x, training=False)))).abs().max())
            if gap > 1e-3:
                raise RuntimeError(f"torch_port's logits differ from the Keras model's by {gap:.3g}")
            adv = make(port)(images, torch.tensor(y, dtype=torch.long)).detach().numpy().transpose(0, 2, 3, 1)
            within = np.abs(adv - x).reshape(len(x), -1).max(1) <= eps + 1e-5  # outside the ball: not a success
            return {"correct": ((predict_labels(net, adv) == y) | ~within).tolist(), "max_linf": float(
                np.abs(adv - x).max())}
        return row

    return {
        "ta_apgd_ce": run(lambda m: torchattacks.APGD(m, norm="Linf", eps=eps, steps=100, loss="ce", seed=seed)),
        "ta_apgd_t": run(lambda m: torchattacks.APGDT(m, norm="Linf", eps=eps, steps=100, n_classes=10, seed=seed)),
        "ta_fab_t": run(lambda m: torchattacks.FAB(m, norm="Linf", eps=eps, steps=100, multi_targeted=True,
                                                   n_classes=10, seed=seed)),
        "ta_square": run(lambda m: torchattacks.Square(m, norm="Linf", eps=eps, n_queries=5000, p_init=0.8,
                                                       seed=seed)),
    }


def rows(net, eps, seed):
    """`{row: f(x, y) -> dict of per-point lists}`."""
    def correct(x_adv, y):
        return {"correct": (predict_labels(net, np.asarray(x_adv)) == y).tolist()}

    def art_apgd(loss):
        from art.attacks.evasion import AutoProjectedGradientDescent

        return lambda x, y: correct(AutoProjectedGradientDescent(
            _art(net, eps), norm=np.inf, eps=eps, eps_step=2 * eps, max_iter=100, nb_random_init=1,
            batch_size=len(x), loss_type=loss, verbose=False).generate(x, y=np.eye(10)[y]), y)

    def minimal(result, x):
        return {"success": np.asarray(result.success).tolist(),
                "l2": np.sqrt(((np.asarray(result.x_adv) - x) ** 2).reshape(len(x), -1).sum(1)).tolist(),
                "changed": ((np.asarray(result.x_adv) != x).reshape(len(x), -1).mean(1)).tolist()}

    def art_cw(x, y):
        from art.attacks.evasion import CarliniL2Method

        x_adv = CarliniL2Method(_art(net, eps), confidence=0.0, learning_rate=CW_LR, binary_search_steps=CW_SEARCH,
                                max_iter=CW_STEPS, initial_const=0.1, batch_size=len(x), verbose=False).generate(x)
        success = predict_labels(net, x_adv) != y
        return {"success": success.tolist(), "l2": np.sqrt(((x_adv - x) ** 2).reshape(len(x), -1).sum(1)).tolist()}

    def art_jsma(x, y):
        from art.attacks.evasion import SaliencyMapMethod

        shift = np.random.default_rng(seed).integers(1, 10, size=len(x))  # the same targets as ours
        targets = (y + shift) % 10
        x_adv = SaliencyMapMethod(_art(net, eps), theta=1.0, gamma=0.15, batch_size=len(x),
                                  verbose=False).generate(x, y=np.eye(10)[targets])
        return {"success": (predict_labels(net, x_adv) == targets).tolist(),
                "changed": ((x_adv != x).reshape(len(x), -1).mean(1)).tolist()}

    def art_square(x, y):
        from art.attacks.evasion import SquareAttack

        x_adv = SquareAttack(_art(net, eps), norm=np.inf, eps=eps, max_iter=5000, p_init=0.8, nb_restarts=1,
                             batch_size=len(x), verbose=False).generate(x, y=np.eye(10)[y])
        return correct(x_adv, y)

    def cascade(x, y):
        result = autoattack(net, x, y, eps, version="standard", seed=seed, progress=False)
        return {"correct": result.robust.tolist(), "fooled_by": result.fooled_by, "seconds": result.seconds}

    step = attacks.default_step_size(eps, 100)
    return {
        "pgd100x5": lambda x, y: correct(attacks.pgd(net, x, y, eps=eps, step_size=step, steps=100, restarts=5), y),
        "apgd_ce": lambda x, y: correct(attacks.apgd_ce(net, x, y, eps=eps, steps=100), y),
        "apgd_dlr": lambda x, y: correct(attacks.apgd_dlr(net, x, y, eps=eps, steps=100), y),
        "apgd_ce_x5": lambda x, y: correct(attacks.apgd_ce(net, x, y, eps=eps, steps=100, restarts=5), y),
        "apgd_dlr_x5": lambda x, y: correct(attacks.apgd_dlr(net, x, y, eps=eps, steps=100, restarts=5), y),
        "apgd_t": lambda x, y: correct(attacks.apgd_t(net, x, y, eps=eps, steps=100, num_targets=9), y),
        "fab_t": lambda x, y: correct(attacks.fab_t(net, x, y, eps=eps, steps=100, num_targets=9), y),
        "square": lambda x, y: correct(attacks.square(net, x, y, eps=eps, queries=5000, seed=seed), y),
        "square_seed1": lambda x, y: correct(attacks.square(net, x, y, eps=eps, queries=5000, seed=seed + 1), y),
        "autoattack": cascade,
        "art_apgd_ce": art_apgd("cross_entropy"),
        "art_apgd_dlr": art_apgd("difference_logits_ratio"),
        "art_square": art_square,
        "cw_l2": lambda x, y: minimal(attacks.carlini_wagner_l2(net, x, y, steps=CW_STEPS, search_steps=CW_SEARCH,
                                                                initial_const=0.1, learning_rate=CW_LR,
                                                                return_result=True), x),
        "art_cw_l2": art_cw,
        "jsma": lambda x, y: minimal(attacks.jsma(net, x, y, gamma=0.15, seed=seed, return_result=True), x),
        "art_jsma": art_jsma,
        **_lazy_rows(lambda: _torchattacks(net, eps, seed), ("ta_apgd_ce", "ta_apgd_t", "ta_fab_t", "ta_square")),
        "square_no_grad": lambda x, y: {"correct": (predict_labels(net, np.asarray(attacks.square(
            zero_gradient(net), x, y, eps=eps, queries=5000, seed=seed))) == y).tolist()},
    }


def _lazy_rows(build, names):
    """Rows whose library is imported only when one of them runs (torch is an optional install)."""
    cache = {}

    def row(name):
        def run(x, y):
            if not cache:
                cache.update(build())
            return cache[name](x, y)
        return run
    return {name: row(name) for name in names}


def summary(store, names, clean):
    lines = [f"clean: {np.mean(clean):.2%} on {len(clean)} points"]
    for name in names:
        keys = [k for k in store.data if k.startswith(name + "@")]
        parts = [store.data[k] for k in sorted(keys, key=lambda k: int(k.split("@")[1]))]
        if not parts:
            continue
        merged = {key: sum((p[key] for p in parts), []) for key in parts[0] if isinstance(parts[0][key], list)}
        seconds = sum(p["wall_seconds"] for p in parts)
        text = f"{name}: {len(merged[next(iter(merged))])} points, {seconds:.0f} s"
        if "correct" in merged:
            text += f", accuracy {np.mean(merged['correct']):.2%}"
        if "success" in merged:
            success = np.asarray(merged["success"], bool)
            text += f", success {success.mean():.2%} (of all points, misclassified ones included)"
            if "l2" in merged:
                text += f", median L2 of successes {np.median(np.asarray(merged['l2'])[success]):.3f}"
            if "changed" in merged and name.endswith("jsma"):
                changed = np.asarray(merged["changed"])
                text += (f", pixels changed: median {np.median(changed[success]):.2%}, "
                         f"max {changed[success].max():.2%}")
        lines.append(text)
    return "\n".join(lines + _square_against_white_box(store, names))


WHITE_BOX = ("pgd100x5", "apgd_ce", "apgd_dlr", "apgd_t", "fab_t", "apgd_ce_x5", "apgd_dlr_x5")


def _correct(store, name):
    parts = [store.data[k] for k in sorted((k for k in store.data if k.startswith(name + "@")),
                                           key=lambda k: int(k.split("@")[1]))]
    return np.concatenate([np.asarray(p["correct"], bool) for p in parts]) if parts else None


def _square_against_white_box(store, names) -> list:
    """The audit's `gradient_free_beats_white_box` check on the stored rows (white-box rows together)."""
    correct = {n: _correct(store, n) for n in names if n in WHITE_BOX or n == "square"}
    correct = {n: c for n, c in correct.items() if c is not None}
    white = [n for n in correct if n != "square"]
    if "square" not in correct or not white or len({len(c) for c in correct.values()}) != 1:
        return []
    flag = curve_checks({n: float(c.mean()) for n, c in correct.items()}, 1.0, white, ["square"],
                        correct=correct)["gradient_free_beats_white_box"]
    return [f"audit, gradient_free_beats_white_box: {'RAISED' if flag.raised else 'not raised'}: {flag.detail}"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--out", required=True, help="the JSON store (resumed if it exists)")
    parser.add_argument("--rows", default="pgd100x5,apgd_ce,apgd_t,square,autoattack,art_apgd_ce,apgd_dlr,"
                                          "art_apgd_dlr")
    parser.add_argument("--eps", type=float, default=0.3)
    parser.add_argument("--limit", type=int, default=1000, help="the first N test digits")
    parser.add_argument("--chunk", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    model = keras.models.load_model(args.model)
    net = getattr(model, "base_model", model)
    x, y = datasets.load("mnist", "test", limit=args.limit)
    store = ResultStore(args.out, verbose=False)
    clean = store.get("clean", lambda: (predict_labels(net, x) == y).tolist())
    names = args.rows.split(",")
    table = rows(net, args.eps, args.seed)
    unknown = set(names) - set(table)
    if unknown:
        parser.error(f"unknown rows {sorted(unknown)}; choose from {sorted(table)}")
    for name in names:
        for start in range(0, len(x), args.chunk):
            key = f"{name}@{start}"
            if key in store:
                continue
            tf.random.set_seed(args.seed + start)
            began = time.time()
            result = table[name](x[start:start + args.chunk], y[start:start + args.chunk])
            store.put(key, {**result, "wall_seconds": time.time() - began})
            print(f"{key}: {time.time() - began:.0f} s", flush=True)
    print(summary(store, names, clean))


if __name__ == "__main__":
    main()
