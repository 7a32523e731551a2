"""`evaluate`: one call from a model to a robustness report you can cite (Markdown, JSON and PNG plots).

The report holds clean accuracy; each attack of the suite run alone; the per-sample worst case over all
of them (for the `"autoattack"` suite, the AutoAttack-style figure); accuracy against the budget and
against the number of attack steps; a loss landscape along an adversarial and a random direction
(as Figure 6 of arXiv:1908.11435 and Figure 7 of the ATAT paper draw it); black-box transfer from a source
model when one is given; and the masking audit's flags, which travel with every figure.

Example:

>>> import numpy as np
>>> from keras_attdef import models
>>> from keras_attdef.evaluation import evaluate
>>> x = np.random.rand(6, 28, 28, 1).astype("float32"); y = np.arange(6)
>>> report = evaluate(models.lenet(), x, y, eps=0.3, suite="quick", progress=False,
...                   eps_fractions=(0.5, 1.0), steps_grid=(1, 10))  # a quick look: two points per curve
>>> report.accuracy["worst case"] <= report.accuracy["clean"], sorted(report.steps_curve)
(True, [1, 10])
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from keras_attdef.inputs import check_eps, check_inputs
from keras_attdef.attacks.engine import objective_gradient
from keras_attdef.attacks.objectives import classification_objective
from keras_attdef.attacks.spec import AttackSpec
from keras_attdef.evaluation.adaptive import ADAPTIVE_ROW, map_adaptive_attack, map_gradient_check, map_term_defense
from keras_attdef.evaluation.audit import TOLERANCE, curve_checks, model_checks
from keras_attdef.evaluation.autoattack import cascade_runners, run_cascade
from keras_attdef.evaluation.suites import cascade_row, suite_attacks
from keras_attdef.evaluation.robustness import evaluate_robustness
from keras_attdef.tables import markdown_table, percent
from keras_attdef.models import predict_labels, unwrap

# Attacks that use no gradient of the evaluated model: the audit compares them with the white-box ones.
BLACK_BOX = ("square", "transfer")
SINGLE_STEP = ("fgsm", "step_ll", "r_step_ll")


def cascade_outcomes(base, x, y, eps: float, norm: str, version: str, batch_size: int, seed: int,
                     progress: bool = False, precision: str = "float32") -> dict:
    """`{cascade row: per-point bool}`: correct after each part of the AutoAttack-style cascade.

    Run batch by batch, each from `seed` (so that shards at batch boundaries match the whole); every
    part is compiled once and runs only on the batch's points no earlier part fooled.
    """
    runners = cascade_runners(base, eps, norm, version, seed=seed, precision=precision)
    first_fooled = np.empty(len(y))  # index of the part that fooled each point: -1 clean, inf never
    starts = range(0, len(y), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"AutoAttack-style cascade ({version})", unit="batch")
    order = {None: np.inf, "clean": -1, **{name: i for i, name in enumerate(runners)}}
    for start in starts:
        tf.random.set_seed(seed)
        part = run_cascade(base, runners, x[start:start + batch_size], y[start:start + batch_size], batch_size)
        first_fooled[start:start + batch_size] = [order[name] for name in part.fooled_by]
    return {cascade_row(i, name): first_fooled > i for i, name in enumerate(runners)}


@dataclasses.dataclass
class EvaluationReport:
    """Everything `evaluate` measured; `to_markdown`, `to_dict` and `save` write it out."""

    label: str
    eps: float
    norm: str
    num_examples: int
    accuracy: dict
    attacks: dict
    eps_curve: dict
    steps_curve: dict
    flags: dict
    landscape: dict
    seconds: float

    @property
    def raised(self) -> list:
        """Names of the audit flags raised."""
        return [name for name, flag in self.flags.items() if flag.raised]

    @property
    def pgd_overstatement(self) -> tuple | None:
        """`(row, points)`: how far the strongest fixed-step PGD row reads above the worst case (None without one).

        A PGD-only evaluation would have reported that row; the gap is what it would have overstated.
        """
        pgd = {n: a for n, a in self.accuracy.items() if n.startswith("PGD-")}
        if not pgd or "worst case" not in self.accuracy:
            return None
        row = min(pgd, key=pgd.get)
        return row, 100 * (pgd[row] - self.accuracy["worst case"])

    def to_markdown(self) -> str:
        gap = self.pgd_overstatement
        caveat = (f" {gap[0]} alone reads {gap[1]:.1f} points above the worst case: quote the worst case."
                  if gap and gap[1] * 0.01 > TOLERANCE else "")
        lines = [f"### Robustness: {self.label}", "",
                 markdown_table(["evaluation", "accuracy"], [[n, percent(a)] for n, a in self.accuracy.items()]),
                 "", f"{self.num_examples} examples, {self.norm} eps={self.eps:g}; worst case: per point over every "
                 f"row; {self.seconds:.0f} s.{caveat}", "", "Accuracy against the budget (PGD-20): "
                 + ", ".join(f"{e:g}: {percent(a)}" for e, a in sorted(self.eps_curve.items())),
                 "", "Accuracy against attack steps (PGD, step eps / 4): "
                 + ", ".join(f"{s}: {percent(a)}" for s, a in sorted(self.steps_curve.items())), "",
                 "Masking audit: " + (", ".join(f"**{n}**" for n in self.raised) if self.raised else "no flag raised"),
                 "", markdown_table(["check", "raised", "evidence"],
                                    [[n, "yes" if f.raised else "no", f.detail] for n, f in self.flags.items()])]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"label": self.label, "eps": self.eps, "norm": self.norm, "num_examples": self.num_examples,
                "accuracy": self.accuracy, "attacks": self.attacks,
                "eps_curve": {str(k): v for k, v in self.eps_curve.items()},
                "steps_curve": {str(k): v for k, v in self.steps_curve.items()},
                "flags": {n: dataclasses.asdict(f) for n, f in self.flags.items()}, "raised": self.raised,
                "seconds": self.seconds}

    def save(self, out) -> dict:
        """Writes `report.md`, `report.json` and the PNG plots into `out`; returns their paths by name."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"markdown": out / "report.md", "json": out / "report.json"}
        paths["markdown"].write_text(self.to_markdown() + "\n")
        paths["json"].write_text(json.dumps(self.to_dict(), indent=2))
        paths.update(plot_report(self, out))
        return paths


def plot_report(report: EvaluationReport, out: Path) -> dict:
    """Accuracy against eps and steps, and the loss landscape, as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = {}
    for name, curve, xlabel in (("accuracy_vs_eps", report.eps_curve, f"{report.norm} budget eps"),
                                ("accuracy_vs_steps", report.steps_curve, "PGD steps")):
        points = sorted(curve.items())
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        ax.plot([p[0] for p in points], [100 * p[1] for p in points], "o-", color="tab:blue")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        if name == "accuracy_vs_steps":
            ax.set_xscale("log")
        ax.set_title(report.label, fontsize=8)
        fig.tight_layout()
        paths[name] = out / f"{name}.png"
        fig.savefig(paths[name], dpi=120)
        plt.close(fig)
    grid = report.landscape
    fig = plt.figure(figsize=(5, 4))
    ax = fig.add_subplot(projection="3d")
    a, b = np.meshgrid(grid["adversarial"], grid["random"], indexing="ij")
    ax.plot_surface(a, b, np.asarray(grid["loss"]), cmap="viridis")
    ax.set_xlabel("adversarial direction")
    ax.set_ylabel("random direction")
    ax.set_zlabel("cross-entropy")
    ax.set_title(f"loss landscape (mean of {grid['images']} images)", fontsize=8)
    fig.tight_layout()
    paths["loss_landscape"] = out / "loss_landscape.png"
    fig.savefig(paths["loss_landscape"], dpi=120)
    plt.close(fig)
    return paths


def loss_landscape(model, x, y, eps: float, points: int = 21, images: int = 8, span: float = 1.5) -> dict:
    """Mean cross-entropy over `images` points at x + a * d_adv + b * d_rand, a and b in [-span, span].

    d_adv is eps times the sign of the loss's input gradient (the FGSM direction), d_rand eps times a
    random sign pattern; inputs are not clipped, so the surface is the model's, not the data range's.
    """
    x = tf.constant(x[:images], tf.float32)
    y = tf.constant(np.asarray(y[:images]), tf.int32)
    adversarial = eps * tf.sign(objective_gradient(classification_objective(model, y), x))
    random = eps * tf.sign(tf.random.stateless_uniform(tf.shape(x), seed=[0, 1], minval=-1.0, maxval=1.0))
    steps = np.linspace(-span, span, points).astype(np.float32)
    grid = np.zeros((points, points))
    for i, a in enumerate(steps):
        batch = tf.concat([x + a * adversarial + b * random for b in steps], 0)
        logits = model(batch, training=False)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.tile(y, [points]), logits=logits)
        grid[i] = tf.reduce_mean(tf.reshape(ce, [points, -1]), axis=1).numpy()
    return {"adversarial": steps.tolist(), "random": steps.tolist(), "loss": grid.tolist(), "images": int(len(x))}


def transfer_accuracy(source, target, x, y, attack, batch_size: int = 256) -> float:
    """Black-box transfer: accuracy of `target` on adversarial examples `attack` makes on `source`.

    Example (Table 6 of the AAD paper: examples from one model, tested on another):

    >>> import numpy as np
    >>> from keras_attdef import AttackSpec, models
    >>> x = np.random.rand(4, 28, 28, 1).astype("float32"); y = np.arange(4)
    >>> 0.0 <= transfer_accuracy(models.lenet(), models.lenet(), x, y, AttackSpec("fgsm", eps=0.1)) <= 1.0
    True
    """
    return float(np.mean(transfer_correct(source, target, x, y, attack, batch_size)))


def transfer_correct(source, target, x, y, attack, batch_size: int = 256) -> np.ndarray:
    """Per point of `x`: whether `target` still classifies the example made on `source` correctly."""
    from keras_attdef.evaluation.robustness import adversarial_examples

    target = unwrap(target)
    x, y = check_inputs(target, x, y)
    adv = adversarial_examples(source, x, y, attack, batch_size)
    return predict_labels(target, adv, batch_size) == y


def evaluate(model, x, y, eps: float, norm: str = "linf", suite: str = "autoattack", source_model=None,
             eps_fractions=(0.25, 0.5, 0.75, 1.0, 1.25), steps_grid=(1, 2, 5, 10, 20, 50),
             batch_size: int = 500, seed: int = 0, progress: bool = True, name: str | None = None,
             precision: str = "float32") -> EvaluationReport:
    """Evaluates a classifier's robustness with a suite of attacks, curves, a landscape and the masking audit.

    Args:
        model: a Keras classifier returning logits, or a `RobustModel`.
        x: images in [0, 1].
        y: integer labels.
        eps: the budget of the table.
        norm: `"linf"` or `"l2"`.
        suite: `"autoattack"` (the standard parts alone and their per-sample worst case), `"fast"` or
            `"quick"` (see `suite_attacks`).
        source_model: if given, adds a black-box transfer row (PGD-20 examples made on it).
        eps_fractions: budgets of the accuracy-vs-eps curve, as fractions of eps (0 is the clean point).
        steps_grid: step counts of the accuracy-vs-steps curve: PGD at eps with one step size for every
            count (eps / 4, PGD-10's), so that more steps means the same attack run longer. (With 2.5 eps /
            steps, PGD-1 and PGD-2 take steps larger than eps that bounce between corners of the ball, and a
            plain LeNet's accuracy rose from 1.8% to 8.0% between them: a false masking flag.)
        batch_size: points attacked at once.
        seed: seeds every random start.
        progress: progress bars.
        name: a label for the model in the report.
        precision: `"float32"`, or `"bfloat16"`: the attacks of the suite and the curves run on a bfloat16
            copy (about 1.6x faster on hardware with bfloat16 instructions, and weaker: 0.6 points on the
            main job's model; `benchmarks/RESULTS.md`), every verdict on the float32 model; the map-adaptive
            attack and the audit's own checks stay float32. The label says so.

    Returns:
        An `EvaluationReport`.
    """
    check_eps(eps)
    start = time.time()
    base = unwrap(model)
    x, y = check_inputs(base, x, y)
    outcomes = measure(base, x, y, eps, norm, suite, source_model, eps_fractions, steps_grid, batch_size, seed,
                       progress, defense=map_term_defense(model), precision=precision)
    return assemble(outcomes, name or getattr(base, "name", "model"), time.time() - start)


def measure(base, x, y, eps: float, norm: str = "linf", suite: str = "autoattack", source_model=None,
            eps_fractions=(0.25, 0.5, 0.75, 1.0, 1.25), steps_grid=(1, 2, 5, 10, 20, 50), batch_size: int = 500,
            seed: int = 0, progress: bool = True, first_points: tuple | None = None, defense=None,
            precision: str = "float32") -> dict:
    """What `evaluate` measures, per point: `{"correct": {row: bool array}, ...}` with the settings beside.

    Every batch restarts the attacks' random streams from `seed` (see `evaluate_robustness`), so outcomes on
    a slice of the points that starts at a batch boundary equal the whole run's on that slice: shards of
    one evaluation are measured separately and `assemble`d together (`keras_attdef.evaluation.shards`).
    The model checks and the loss landscape look at the first points: `first_points=(x, y)` of the whole
    evaluation when `x` is a slice of it. With a `defense` that has a map term, the map-adaptive attack is a
    row of the suite and `map_term_hides_gradient` a check (`keras_attdef.evaluation.adaptive`).
    """
    audit_x, audit_y = first_points or (x, y)
    attacks = suite_attacks(eps, norm, suite, seed)
    if defense is not None:
        attacks[ADAPTIVE_ROW] = map_adaptive_attack(defense, eps, norm=norm)
    cascade = {} if suite == "quick" else cascade_outcomes(base, x, y, eps, norm, "standard" if suite == "autoattack"
                                                            else "fast", batch_size, seed, progress, precision)
    alone = {n: spec for n, spec in attacks.items() if n not in cascade and n != ADAPTIVE_ROW}
    correct = evaluate_robustness(base, (x, y), alone, batch_size, progress, seed=seed, precision=precision).correct
    if ADAPTIVE_ROW in attacks:  # the map attack reads the model's own layers: always on the float32 model
        correct[ADAPTIVE_ROW] = evaluate_robustness(base, (x, y), {ADAPTIVE_ROW: attacks[ADAPTIVE_ROW]}, batch_size,
                                                    progress, seed=seed).correct[ADAPTIVE_ROW]
    correct.update(cascade)
    black_box = [n for n, spec in attacks.items() if spec.name in BLACK_BOX]
    if source_model is not None:
        row = "transfer (PGD-20 from source)"
        correct[row] = transfer_correct(source_model, base, x, y, AttackSpec("pgd", eps=eps, steps=20, norm=norm),
                                        batch_size)
        black_box.append(row)
    curve_rows = {f"eps {f * eps:g}": AttackSpec("pgd", eps=f * eps, steps=20, norm=norm) for f in eps_fractions if f > 0}
    curve_rows.update({f"steps {s}": AttackSpec("pgd", eps=eps, steps=s, step_size=eps / 4, norm=norm)
                       for s in steps_grid})
    # a curve point that is a row already run (PGD-20 at eps itself) is that row's outcome, not a second run
    known = {n: correct[row] for n, spec in curve_rows.items() for row, other in alone.items() if spec == other}
    fresh = evaluate_robustness(base, (x, y), {n: s for n, s in curve_rows.items() if n not in known}, batch_size,
                                progress, seed=seed, precision=precision).correct
    curves = {n: known[n] if n in known else fresh[n] for n in curve_rows}
    return {"eps": float(eps), "norm": norm, "suite": suite, "seed": int(seed), "batch_size": int(batch_size),
            "precision": precision,
            "eps_fractions": [float(f) for f in eps_fractions], "steps_grid": [int(s) for s in steps_grid],
            "attacks": {n: s.get_config() for n, s in attacks.items()}, "black_box": black_box,
            "single_step": [n for n, spec in attacks.items() if spec.name in SINGLE_STEP],
            "correct": {**correct, **curves},
            "model_checks": {**model_checks(base, audit_x, audit_y),
                             **({} if defense is None else
                                {"map_term_hides_gradient": map_gradient_check(base, defense, audit_x, audit_y, eps,
                                                                               seed)})},
            "landscape": loss_landscape(base, audit_x, audit_y, eps)}


def assemble(outcomes: dict, label: str, seconds: float) -> EvaluationReport:
    """The report of `measure`'s outcomes: accuracies, the per-point worst case, curves and the audit."""
    correct, eps = outcomes["correct"], outcomes["eps"]
    curve_names = {f"eps {f * eps:g}" for f in outcomes["eps_fractions"] if f > 0}
    curve_names |= {f"steps {s}" for s in outcomes["steps_grid"]}
    rows = [n for n in correct if n not in curve_names]
    accuracy = {n: float(np.mean(correct[n])) for n in rows}
    if len(rows) > 1:
        accuracy["worst case"] = float(np.logical_and.reduce([correct[n] for n in rows]).mean())  # per point
    eps_curve = {0.0: accuracy["clean"], **{f * eps: float(np.mean(correct[f"eps {f * eps:g}"]))
                                            for f in outcomes["eps_fractions"] if f > 0}}
    steps_curve = {s: float(np.mean(correct[f"steps {s}"])) for s in outcomes["steps_grid"]}
    black_box = outcomes["black_box"]
    white_box = [n for n in rows if n not in black_box and n != "clean"]
    attacked = {k: v for k, v in accuracy.items() if k not in ("clean", "worst case")}
    num_points = len(correct["clean"])
    flags = {**outcomes["model_checks"],
             **curve_checks(attacked, accuracy["clean"], white_box, black_box, eps_curve, steps_curve, num_points,
                            {n: correct[n] for n in rows}, [n for n in white_box if n in outcomes["single_step"]])}
    if outcomes["suite"] == "autoattack":
        label += ", worst case = AutoAttack-style (standard parts: APGD-CE, APGD-T, FAB-T, Square)"
    if outcomes.get("precision", "float32") != "float32":
        label += f", attacks in {outcomes['precision']}"
    return EvaluationReport(label, eps, outcomes["norm"], num_points, accuracy, outcomes["attacks"], eps_curve,
                            steps_curve, flags, outcomes["landscape"], seconds)
