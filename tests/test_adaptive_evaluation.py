"""The map-adaptive attack beside the suite, and the flag for a map term that hides its gradient."""
import numpy as np

from keras_attdef import RobustModel, defenses, models
from keras_attdef.attention import empty_map_rate, grad_cam
from keras_attdef.evaluation import evaluate
from keras_attdef.evaluation.shards import evaluate_shard
from keras_attdef.evaluation.adaptive import ADAPTIVE_ROW, defense_maps, has_map_term, map_gradient_check


def dead_map_model():
    """A class-activation head whose class weights are all <= 0 on conv3's non-negative features: every
    ReLU Grad-CAM map is zero everywhere, the state AAD's preservation term trains towards."""
    model = models.small_cam_lenet()
    kernel, bias = model.layers[-1].get_weights()
    model.layers[-1].set_weights([-np.abs(kernel), bias])
    return model


def test_a_map_term_whose_maps_are_zero_is_flagged_and_signed_maps_are_not(mnist_test, trained_lenet):
    x, y = mnist_test[0][:64], mnist_test[1][:64]
    aad = defenses.get("aad")
    signed = defenses.get("attention_trades", eps=0.3, steps=3)
    dead = dead_map_model()
    assert float(empty_map_rate(grad_cam(dead, x, target=y))) == 1.0  # the collapse the flag must see
    hidden = map_gradient_check(dead, aad, x, y, eps=0.3)
    assert hidden.raised and "100.0%" in hidden.detail and ADAPTIVE_ROW in hidden.detail
    # The same network with signed maps (the option that cannot vanish) gives the attack a gradient...
    assert not map_gradient_check(dead, signed, x, y, eps=0.3).raised
    # ...and ReLU maps of a healthy classifier do too: the flag is about the maps, not about ReLU.
    assert not map_gradient_check(trained_lenet, aad, x, y, eps=0.3).raised


def test_defense_maps_follow_each_defence():
    assert defense_maps(defenses.get("aad"))["activation"] == "relu"
    signed = defense_maps(defenses.get("attention_trades", eps=0.3, steps=3, distance="softmax_js"))
    assert signed["activation"] == "none" and signed["distance"] == "softmax_js"
    assert defense_maps(defenses.get("madry")) == defense_maps(None)


def test_evaluate_puts_the_map_adaptive_attack_beside_the_suite(mnist_test):
    x, y = mnist_test[0][:16], mnist_test[1][:16]
    kwargs = dict(eps=0.3, suite="quick", eps_fractions=(1.0,), steps_grid=(1,), progress=False, batch_size=16)
    attention = RobustModel(dead_map_model(), defenses.get("aad"))
    report = evaluate(attention, x, y, **kwargs)
    assert ADAPTIVE_ROW in report.accuracy and report.accuracy["worst case"] <= report.accuracy[ADAPTIVE_ROW]
    assert report.flags["map_term_hides_gradient"].raised
    assert report.attacks[ADAPTIVE_ROW]["name"] == "map_pgd"
    assert not has_map_term(RobustModel(models.small_cam_lenet(), "madry").defense)  # no row, no flag
    # a shard of the same evaluation measures the same rows (shards merge into the whole's report)
    partial = evaluate_shard(attention, x, y, shard="0/1", **kwargs)
    assert partial["correct"][ADAPTIVE_ROW].count("1") / len(y) == report.accuracy[ADAPTIVE_ROW]
    assert partial["model_checks"]["map_term_hides_gradient"]["raised"]
