"""Pictures: a grid of images with their attention before and after an attack, drawn with matplotlib."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_attdef.attacks.spec import as_spec
from keras_attdef.attention.gradcam import grad_cam
from keras_attdef.models import last_conv_layer


def attention_grid(model, x, y, attack, path, layer: str | None = None, class_names=None, max_images: int = 8,
                   use_tf_keras_vis: bool = False):
    """Writes a PNG: per image, the image, its Grad-CAM, the adversarial image and its Grad-CAM.

    Args:
        model: a functional classifier returning logits.
        x: images in [0, 1].
        y: labels.
        attack: `AttackSpec` (or dict / name).
        path: output PNG path.
        layer: Grad-CAM layer (default the topmost conv layer).
        class_names: label names for the titles.
        max_images: rows in the grid.
        use_tf_keras_vis: draw maps with tf-keras-vis's Gradcam (eager) instead of this package's.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layer = layer or last_conv_layer(model)
    x = np.asarray(x[:max_images], np.float32)
    y = np.asarray(y[:max_images]).reshape(-1)
    x_adv = as_spec(attack)(model, x, y).numpy()

    def maps_of(images):
        if use_tf_keras_vis:
            from tf_keras_vis.gradcam import Gradcam
            from tf_keras_vis.utils.scores import CategoricalScore

            preds = np.argmax(model.predict(images, verbose=0), -1)
            return np.asarray(Gradcam(model, clone=True)(CategoricalScore(list(preds)), images,
                                                          penultimate_layer=layer))
        return grad_cam(model, images, layer, resize=True, normalize="minmax").numpy()

    clean_pred = np.argmax(model.predict(x, verbose=0), -1)
    adv_pred = np.argmax(model.predict(x_adv, verbose=0), -1)
    names = class_names or [str(i) for i in range(int(model.output_shape[-1]))]
    fig, axes = plt.subplots(len(x), 4, figsize=(8, 2.1 * len(x)), squeeze=False)
    for row, (img, cam, adv, adv_cam) in enumerate(zip(x, maps_of(x), x_adv, maps_of(x_adv))):
        panels = [(img, f"label {names[y[row]]}"), (cam, f"Grad-CAM, predicted {names[clean_pred[row]]}"),
                  (adv, "adversarial"), (adv_cam, f"Grad-CAM, predicted {names[adv_pred[row]]}")]
        for col, (picture, title) in enumerate(panels):
            ax = axes[row, col]
            if col % 2 == 0:
                ax.imshow(picture.squeeze(), cmap="gray" if picture.shape[-1] == 1 else None, vmin=0, vmax=1)
            else:
                ax.imshow((x if col == 1 else x_adv)[row].squeeze(), cmap="gray", vmin=0, vmax=1)
                ax.imshow(picture, cmap="jet", alpha=0.5, vmin=0, vmax=1)
            color = "crimson" if col == 3 and adv_pred[row] != y[row] else "black"
            ax.set_title(title, fontsize=9, color=color)
            ax.axis("off")
    fig.suptitle(f"Grad-CAM at {layer!r} before and after {as_spec(attack).name}", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))  # room for the title above the columns
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
