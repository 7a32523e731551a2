"""`evaluate_robustness`: clean accuracy and accuracy under each attack, as a dict and a Markdown table.

Example:

>>> import numpy as np
>>> from keras_attdef import AttackSpec, evaluate_robustness, models
>>> x = np.random.rand(8, 28, 28, 1).astype("float32"); y = np.arange(8) % 10
>>> report = evaluate_robustness(models.lenet(), (x, y), {"FGSM 0.1": AttackSpec("fgsm", eps=0.1)},
...                              progress=False)
>>> sorted(report.accuracy)
['FGSM 0.1', 'clean', 'worst case']
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from keras_attdef.inputs import check_labels
from keras_attdef.attacks.spec import as_spec, compile_attack
from keras_attdef.evaluation.suites import pgd_table
from keras_attdef.tables import markdown_table, percent
from keras_attdef.evaluation.precision import attack_model
from keras_attdef.models import unwrap


@dataclasses.dataclass
class RobustnessReport:
    """Accuracy per row (`clean`, each attack, `worst case`: correct under every attack) and counts.

    `correct` holds the per-point outcome behind each accuracy (`{row: bool array}`), for paired tests.
    """

    accuracy: dict
    num_examples: int
    attacks: dict
    correct: dict = dataclasses.field(default_factory=dict, repr=False)

    def to_markdown(self, title: str | None = None) -> str:
        table = markdown_table(["evaluation", "accuracy"], [[n, percent(a)] for n, a in self.accuracy.items()], title)
        return f"{table}\n\n{self.num_examples} examples."

    def __str__(self) -> str:
        return self.to_markdown()


def _batches(data, batch_size):
    if isinstance(data, tf.data.Dataset):
        for batch in data:
            yield batch[0], batch[1]
        return
    images, labels = data
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels.")
    for start in range(0, len(images), batch_size):
        yield images[start:start + batch_size], labels[start:start + batch_size]


def adversarial_examples(model, x, y, attack, batch_size: int = 256, clip_min: float = 0.0, clip_max: float = 1.0,
                         progress: bool = False) -> np.ndarray:
    """The adversarial batch `attack` makes on `model` for arrays `x`, `y`, in batches.

    Example:

    >>> import numpy as np
    >>> from keras_attdef import AttackSpec, models
    >>> x = np.random.rand(3, 28, 28, 1).astype("float32")
    >>> adversarial_examples(models.lenet(), x, np.arange(3), AttackSpec("fgsm", eps=0.1)).shape
    (3, 28, 28, 1)
    """
    base = unwrap(model)
    run = compile_attack(as_spec(attack), base, clip_min, clip_max)
    starts = range(0, len(x), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"{as_spec(attack).name}", unit="batch")
    return np.concatenate([np.asarray(run(tf.constant(x[i:i + batch_size]), tf.constant(y[i:i + batch_size])))
                           for i in starts])


def evaluate_robustness(model, data, attacks=None, batch_size: int = 256, progress: bool = True,
                        clip_min: float = 0.0, clip_max: float = 1.0, seed: int | None = None,
                        precision: str = "float32") -> RobustnessReport:
    """Accuracy on clean inputs and under each attack.

    Args:
        model: a Keras classifier returning logits, or a `RobustModel`.
        data: `(images, labels)` arrays or a `tf.data.Dataset` of batches.
        attacks: `{row name: AttackSpec or dict or name}`, a list of specs, or None for `suites.pgd_table()`.
        batch_size: batch size for arrays.
        progress: show a progress bar.
        clip_min: smallest valid input value (passed to every attack).
        clip_max: largest valid input value.
        seed: if given, TensorFlow's global seed is set to it before every batch, which restarts each
            compiled attack's random stream: a batch's outcome then depends only on its points, not on the
            batches before it (so an evaluation split into shards at batch boundaries matches the whole).
        precision: `"float32"`, or `"bfloat16"` to run the attacks on a bfloat16 copy (`evaluation.precision`);
            every prediction that counts is the float32 model's.

    Returns:
        A `RobustnessReport`; `report.accuracy` maps row names to accuracies in [0, 1].
    """
    base = unwrap(model)
    if attacks is None:
        attacks = pgd_table()
    if not isinstance(attacks, dict):
        attacks = {repr(as_spec(a)): a for a in attacks}
    specs = {name: as_spec(spec) for name, spec in attacks.items()}
    attacked = attack_model(base, precision)
    runners = {name: compile_attack(spec, attacked, clip_min, clip_max) for name, spec in specs.items()}
    predict = tf.function(lambda x: tf.argmax(base(x, training=False), axis=-1, output_type=tf.int32))
    correct = {name: [] for name in ["clean", *specs]}
    batches = _batches(data, batch_size)
    if progress:
        from tqdm.auto import tqdm

        total = None if isinstance(data, tf.data.Dataset) else -(-len(data[0]) // batch_size)
        batches = tqdm(batches, total=total, desc="robustness", unit="batch")
    for x, y in batches:
        if seed is not None:
            tf.random.set_seed(seed)
        x = tf.convert_to_tensor(x, tf.float32)
        y = check_labels(y, x)
        correct["clean"].append((predict(x) == y).numpy())
        for name, run in runners.items():
            correct[name].append((predict(run(x, y)) == y).numpy())
    flags = {name: np.concatenate(values) for name, values in correct.items()}
    accuracy = {name: float(values.mean()) for name, values in flags.items()}
    if specs:
        accuracy["worst case"] = float(np.logical_and.reduce([flags[n] for n in flags]).mean())
    return RobustnessReport(accuracy, int(len(flags["clean"])), {n: s.get_config() for n, s in specs.items()},
                            flags)
