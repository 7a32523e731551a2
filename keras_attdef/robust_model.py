"""`RobustModel`: a `keras.Model` whose `train_step` trains a wrapped classifier against attacks.

Example:

>>> import keras
>>> from keras_attdef import RobustModel, defenses, models
>>> robust = RobustModel(models.lenet(), defense=defenses.madry(eps=0.3, step_size=0.1, steps=7))
>>> robust.compile(optimizer="adam", metrics=["accuracy"])   # loss defaults to sparse CE on logits
>>> # robust.fit(train_ds, epochs=2); robust.save("robust.keras")
"""
from __future__ import annotations

import keras
import tensorflow as tf

from keras_attdef import defenses as defenses_module
from keras_attdef import distribute
from keras_attdef.cpu import warn_if_onednn_off
from keras_attdef.inputs import check_labels, check_range
from keras_attdef.attacks.spec import as_spec
from keras_attdef.losses import scale_for_distribution, unscale_for_distribution


@keras.saving.register_keras_serializable(package="keras_attdef")
class RobustModel(keras.Model):
    """Wraps a functional classifier; `fit` trains it with a defence, `predict`/`__call__` use it as is.

    Args:
        base_model: a built Keras model returning logits.
        defense: a preset name (`"madry"`, `"fast"`, `"alp"`, `"trades"`, `"plain"`, ...), a
            `defenses.Defense`, or its serialised dict.
        eval_attack: attack used by `evaluate` (and `fit`'s validation) to report `adv_accuracy`:
            `"auto"` (the defence's own attack), None (clean evaluation only), or an `AttackSpec`.
        clip_min: smallest valid input value.
        clip_max: largest valid input value.
        **kwargs: passed to `keras.Model` (`name`, ...).

    Logged metrics: `loss`, the compiled metrics, `adv_accuracy`, and one `<term>_loss` per extra
    defence term (`pair_loss`, `kl_loss`, ...). In training the compiled metrics see the clean logits when
    the defence computes them (ALP, TRADES, AAD, ...) and otherwise the adversarial logits the loss is
    computed on (Madry, fast), so that no forward pass runs only for metrics. `evaluate` and validation
    report both clean metrics and `adv_accuracy`.

    On CPUs leave `jit_compile` off (the default; XLA is slower than graph mode on the CPUs measured in
    benchmarks/RESULTS.md): it is for GPUs. Under a `tf.distribute` strategy `compile(jit_compile=True)`
    compiles the attack and the loss+gradient in an inner XLA function, as whole-step XLA fails there.
    """

    def __init__(self, base_model: keras.Model, defense="madry", eval_attack="auto",
                 clip_min: float = 0.0, clip_max: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(base_model, keras.Model):
            raise TypeError(f"base_model must be a keras.Model, got {type(base_model).__name__}.")
        if not base_model.built:
            raise ValueError("base_model must be built (a functional model, or call it once on a batch).")
        if clip_min >= clip_max:
            raise ValueError(f"clip_min ({clip_min}) must be below clip_max ({clip_max}).")
        self.base_model = base_model
        self.defense = defenses_module.get(defense)
        self.defense.attach(base_model)
        # Tracked so that a teacher's weights are saved in the .keras file with the model's.
        self.auxiliary_models = list(self.defense.auxiliary_models)
        if eval_attack == "auto":
            eval_attack = self.defense.attack
        self.eval_attack = None if eval_attack is None else as_spec(eval_attack)
        self.clip_min, self.clip_max = float(clip_min), float(clip_max)
        self.num_classes = int(base_model.output_shape[-1])
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.term_trackers = [keras.metrics.Mean(name=f"{term}_loss") for term in self.defense.term_names]
        self.adv_accuracy = keras.metrics.SparseCategoricalAccuracy(name="adv_accuracy")
        self.defense_trackers = [keras.metrics.Mean(name=name) for name in self.defense.metric_names]
        self._inner_jit = False
        # Built now, so a model saved before it was ever called still saves its optimizer state.
        self.build(base_model.input_shape)

    def build(self, input_shape=None):
        self.built = True

    def call(self, inputs, training=None):
        return self.base_model(inputs, training=training)

    @property
    def metrics(self):
        # Our own loss tracker (the total with every defence term) replaces Keras' built-in one, which
        # only the default train_step updates.
        return [self.loss_tracker, *(m for m in super().metrics if m.name != "loss")]

    # -- compile ----------------------------------------------------------------------------------
    def compile(self, optimizer="adam", loss=None, jit_compile="auto", **kwargs):
        """`keras.Model.compile`; `loss` defaults to sparse cross-entropy on logits."""
        if loss is None:
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        self._inner_jit = jit_compile is True and replicas > 1
        if self._inner_jit:
            jit_compile = False  # whole-step XLA fails under a strategy; see _adversarial_gradients
        if self._inner_jit:
            _check_mirrored(self.auxiliary_models)
        super().compile(optimizer=optimizer, loss=loss, jit_compile=jit_compile, **kwargs)
        warn_if_onednn_off()
        # Optimizer state exists from here on: a model saved before fit keeps it, and a step whose first
        # trace failed on bad data does not create variables on a later trace.
        self.optimizer.build(self.trainable_variables)

    def compile_from_config(self, config):
        # Keras skips compile on load when compile is overridden; ours only adds defaults, so run it.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)

    # -- several machines (keras-team/keras#20585; see keras_attdef.distribute) -------------------
    def fit(self, *args, **kwargs):
        with distribute.keras_fixes(self.distribute_strategy):
            return super().fit(*args, **kwargs)

    def evaluate(self, *args, **kwargs):
        with distribute.keras_fixes(self.distribute_strategy):
            return super().evaluate(*args, **kwargs)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is not None and distribute.is_multi_worker(self.distribute_strategy):
            for _, _, batches in iterator:  # as Keras does, but building on one replica's part of the batch
                data_batch = distribute.local_part(self.distribute_strategy, next(batches))
                break
            iterator = None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    # -- steps ------------------------------------------------------------------------------------
    def _prepare(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if y is None:
            raise ValueError("RobustModel needs labels: pass (images, labels) to fit/evaluate.")
        try:
            x = check_range(x, self.clip_min, self.clip_max)
            y = check_labels(y, x, self.num_classes)
        except ValueError:
            # A trace that fails here leaves Keras' cached step function half built; drop it so that
            # the next call with good data traces afresh.
            self.train_function = self.test_function = None
            raise
        return x, y, sample_weight

    def _adversarial_gradients(self, x, y, sample_weight, scale):
        adv = self.defense.perturb(self.base_model, x, y, scale)
        with tf.GradientTape() as tape:
            out = self.defense.loss_terms(self.base_model, x, y, adv)
            weights = sample_weight
            if sample_weight is not None and out.task_rows is not None:
                weights = tf.gather(sample_weight, out.task_rows)
            loss = self.compute_loss(x=x, y=out.task_labels, y_pred=out.task_logits, sample_weight=weights,
                                     training=True)
            if out.task_weight != 1.0:
                loss = loss * out.task_weight
            ramps = self.defense.term_scales(self.optimizer.iterations)
            for term, value in out.terms.items():
                weight = self.defense.weights.get(term, 1.0) * ramps.get(term, 1.0)
                loss = loss + weight * scale_for_distribution(value)
            scaled = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, self.trainable_weights)
        # Compiled metrics see the clean logits when the defence computed them, else the logits the loss
        # was computed on (Madry: adversarial ones): no forward pass runs only for metrics.
        metric_logits = out.clean_logits if out.clean_logits is not None else out.task_logits
        return gradients, loss, out.terms, metric_logits, out.adv_logits, out.metrics

    def train_step(self, data):
        x, y, sample_weight = self._prepare(data)
        scale = self.defense.budget_scale(self.optimizer.iterations)
        core = self._adversarial_gradients
        if self._inner_jit:
            core = tf.function(core, jit_compile=True, autograph=False)
        gradients, loss, terms, metric_logits, adv_logits, defense_metrics = core(x, y, sample_weight, scale)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        self.loss_tracker.update_state(unscale_for_distribution(loss), sample_weight=tf.shape(x)[0])
        for tracker in self.term_trackers:
            tracker.update_state(terms[tracker.name[: -len("_loss")]])
        for tracker in self.defense_trackers:
            tracker.update_state(defense_metrics[tracker.name])
        if adv_logits is not None:
            self.adv_accuracy.update_state(y, adv_logits, sample_weight=sample_weight)
        logs = self.compute_metrics(x, y, metric_logits, sample_weight=sample_weight)
        return self._drop_unused(logs, adversarial=adv_logits is not None, terms=True)

    def test_step(self, data):
        x, y, sample_weight = self._prepare(data)
        logits = self.base_model(x, training=False)
        loss = self.compute_loss(x=x, y=y, y_pred=logits, sample_weight=sample_weight, training=False)
        self.loss_tracker.update_state(unscale_for_distribution(loss), sample_weight=tf.shape(x)[0])
        if self.eval_attack is not None:
            adv = self.eval_attack(self.base_model, x, y)
            self.adv_accuracy.update_state(y, self.base_model(adv, training=False), sample_weight=sample_weight)
        logs = self.compute_metrics(x, y, logits, sample_weight=sample_weight)
        return self._drop_unused(logs, adversarial=self.eval_attack is not None, terms=False)

    def _drop_unused(self, logs, adversarial: bool, terms: bool):
        # Trackers a step did not update would log a misleading 0.
        unused = set() if terms else {t.name for t in [*self.term_trackers, *self.defense_trackers]}
        if not adversarial:
            unused.add(self.adv_accuracy.name)
        return {k: v for k, v in logs.items() if k not in unused}

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self.base_model(x, training=False)

    # -- serialisation ----------------------------------------------------------------------------
    def get_config(self) -> dict:
        config = super().get_config()
        config.update({
            "base_model": keras.saving.serialize_keras_object(self.base_model),
            "defense": defenses_module.serialize(self.defense),
            "eval_attack": None if self.eval_attack is None else self.eval_attack.get_config(),
            "clip_min": self.clip_min,
            "clip_max": self.clip_max,
        })
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["base_model"] = keras.saving.deserialize_keras_object(config["base_model"],
                                                                     custom_objects=custom_objects)
        config["defense"] = defenses_module.deserialize(config["defense"])
        return cls(**config)


def _check_mirrored(models) -> None:
    """Under a strategy, XLA cannot read a variable placed on another replica's device: a defence's teacher
    built outside `strategy.scope()` fails at the first step with an unhelpful graph error."""
    for model in models:
        weights = getattr(model, "weights", [])
        if weights and not isinstance(getattr(weights[0], "value", weights[0]), tf.distribute.DistributedValues):
            raise ValueError(
                f"The defence's {getattr(model, 'name', 'auxiliary')!r} model was built outside the distribution "
                "strategy's scope, and XLA (jit_compile=True) cannot read its weights from the other replicas. "
                "Create or load it inside `with strategy.scope():` (e.g. keras.models.load_model there), or "
                "compile without jit_compile.")

