"""Every named set of attacks, as `{row name: AttackSpec}`: the one place a suite is defined.

- `cascade_parts`: the AutoAttack-style cascade's parts, in order (`"standard"` or `"fast"`).
- `suite_attacks`: `evaluate`'s rows (FGSM and PGD beside the cascade's parts) for each of `SUITES`.
- `pgd_table`: the PGD-family table `evaluate_robustness` runs by default (it overstates robustness).
- `paper_attacks`: the AAD paper's Table 5 columns, with its own step sizes.
- `detection_attacks`: the LAN thesis's attacks (FGSM, JSMA, C&W-L2) for a dataset.

Example:

>>> from keras_attdef.evaluation.suites import cascade_parts, suite_attacks
>>> list(cascade_parts(0.3, version="fast"))
['APGD-CE', 'APGD-T']
>>> list(suite_attacks(0.3, suite="fast"))
['FGSM', 'PGD-20', 'APGD-CE', 'after APGD-T']
"""
from __future__ import annotations

from keras_attdef.attacks.gradient import default_step_size
from keras_attdef.attacks.spec import AttackSpec

VERSIONS = ("standard", "fast")
SUITES = ("autoattack", "fast", "quick")
JSMA_GAMMA = 0.15  # the thesis's largest share of features JSMA may change


def cascade_parts(eps: float, norm: str = "linf", version: str = "standard", steps: int = 100,
                  queries: int = 5000, seed: int = 0) -> dict:
    """The AutoAttack-style cascade's attacks in order: APGD-CE and APGD-T (9 targets; 3 in `"fast"`), then in
    `"standard"` FAB-T and Square."""
    if version not in VERSIONS:
        raise ValueError(f"Unknown AutoAttack version {version!r}; choose one of {VERSIONS}.")
    attacks = {
        "APGD-CE": AttackSpec("apgd_ce", eps=eps, steps=steps, norm=norm),
        "APGD-T": AttackSpec("apgd_t", eps=eps, steps=steps, norm=norm, num_targets=9 if version == "standard" else 3),
    }
    if version == "standard":
        attacks["FAB-T"] = AttackSpec("fab_t", eps=eps, steps=steps, norm=norm, num_targets=9)
        attacks["Square"] = AttackSpec("square", eps=eps, queries=queries, norm=norm, seed=seed)
    return attacks


def cascade_row(position: int, part: str) -> str:
    """The report row of the cascade's `position`-th part: its name first, then `"after <name>"`."""
    return part if position == 0 else f"after {part}"


def suite_attacks(eps: float, norm: str = "linf", suite: str = "autoattack", seed: int = 0) -> dict:
    """The attacks of a suite by row name: FGSM and PGD beside the AutoAttack-style parts.

    `"autoattack"`: FGSM, PGD-20, PGD-100 and the standard parts (APGD-CE, APGD-T, FAB-T, Square); `"fast"`:
    FGSM, PGD-20 and the fast parts; `"quick"`: FGSM, PGD-10 and APGD-CE with 20 steps (smoke tests).
    The parts run as the cascade runs them, each on the points the parts before it left: the first part's
    row is that attack alone, the others' rows (`"after APGD-T"`, ...) the cascade's accuracy after them.
    """
    if suite not in SUITES:
        raise ValueError(f"Unknown suite {suite!r}; choose one of {SUITES}.")
    rows = {"FGSM": AttackSpec("fgsm", eps=eps)} if norm == "linf" else {}
    if suite == "quick":
        rows["PGD-10"] = AttackSpec("pgd", eps=eps, steps=10, norm=norm)
        rows["APGD-CE (20 steps)"] = AttackSpec("apgd_ce", eps=eps, steps=20, norm=norm)
        return rows
    rows["PGD-20"] = AttackSpec("pgd", eps=eps, steps=20, norm=norm)
    if suite == "autoattack":
        rows["PGD-100"] = AttackSpec("pgd", eps=eps, steps=100, norm=norm)
    parts = cascade_parts(eps, norm, "standard" if suite == "autoattack" else "fast", seed=seed)
    rows.update({cascade_row(i, name): spec for i, (name, spec) in enumerate(parts.items())})
    return rows


def pgd_table(eps: float = 0.3) -> dict:
    """A PGD-family table: FGSM, StepLL, Iter-LL, PGD-20 and PGD-40 at `eps` (steps scale with eps).

    It overstates robustness: quote `autoattack` or `evaluate(suite="autoattack")` instead.
    """
    return {
        f"FGSM eps={eps}": AttackSpec("fgsm", eps=eps),
        f"StepLL eps={eps}": AttackSpec("step_ll", eps=eps),
        f"Iter-LL eps={eps}": AttackSpec("iter_ll", eps=eps, step_size=eps / 2, rounds=2),
        f"PGD-20 eps={eps}": AttackSpec("pgd", eps=eps, step_size=eps / 8, steps=20),
        f"PGD-40 eps={eps}": AttackSpec("pgd", eps=eps, step_size=default_step_size(eps, 40), steps=40),
    }


def paper_attacks(eps: float = 0.3) -> dict:
    """The columns of the AAD paper's Table 5 (I-FGSM: three rounds; PGD: its step of 0.01)."""
    return {
        "FGSM 0.15": AttackSpec("fgsm", eps=0.15),
        "I-FGSM 0.15": AttackSpec("ifgsm", eps=0.15, steps=3, step_size=0.05),
        "StepLL 0.15": AttackSpec("step_ll", eps=0.15),
        "PGD-30": AttackSpec("pgd", eps=eps, steps=30, step_size=0.01, random_start=True),
        "PGD-100": AttackSpec("pgd", eps=eps, steps=100, step_size=0.01, random_start=True),
    }


def detection_attacks(dataset: str, cw_steps: int = 100) -> tuple[dict, float]:
    """The LAN thesis's attacks (FGSM, JSMA, C&W-L2) with this library's settings, and the Linf eps used.

    On CIFAR-10, JSMA searches its pixel pairs among a pool of 128 features per iteration (`jsma(pool=)`):
    all-pairs JSMA on 3,072 colour features costs ~10 GB and hours.
    """
    eps = 0.2 if dataset in ("mnist", "fashion_mnist") else 8 / 255
    return {
        f"FGSM {eps:.3g}": AttackSpec("fgsm", eps=eps),
        "JSMA": AttackSpec("jsma", gamma=JSMA_GAMMA) if dataset != "cifar10" else
                AttackSpec("jsma", gamma=JSMA_GAMMA, pool=128),
        "C&W-L2": AttackSpec("cw_l2", steps=cw_steps, search_steps=5, initial_const=0.1, learning_rate=0.05),
    }, eps
