"""Classify image files (PNG/JPEG/...) or the arrays of an .npz with a trained model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnkit.errors import DataError

# The array predict reads from an .npz: the first of these names it holds.
NPZ_IMAGE_KEYS = ("x_test", "x", "images", "x_train")


@dataclass
class Input:
    """One input the user named: an image file (pixels read once the model says its size) or an .npz's images."""

    path: Path
    images: np.ndarray | None  # uint8 samples of an .npz; None for an image file


def check_inputs(inputs: list[Path]) -> list[Input]:
    """Every input checked (image files) or read (.npz files) before the model, and TensorFlow, are loaded.

    A typo'd path, a corrupt file or a decompression bomb is refused at once, not after a 6 s TF import.
    """
    from cnnkit.data.images import check_image

    checked = []
    for path in map(Path, inputs):
        if path.suffix.lower() == ".npz":
            checked.append(Input(path, _npz_images(path)))
        else:
            check_image(path)
            checked.append(Input(path, None))
    return checked


def load_inputs(model, inputs: list[Input]) -> tuple[list[str], np.ndarray, list[str | None]]:
    """(labels, float32 batch in [0, 1], one resize warning or None per label) for the checked inputs."""
    from cnnkit.data.feed import arrange, feed_for
    from cnnkit.data.images import image_for

    want = tuple(int(d) for d in model.input_shape[1:])
    labels, arrays, warnings = [], [], []
    for item in inputs:
        if item.images is not None:
            x = arrange(item.images, feed_for(want, tuple(item.images.shape[1:]), str(item.path)))
            arrays.append(x.astype(np.float32) / 255.0)
            labels += [f"{item.path.name}[{i}]" for i in range(len(x))]
            warnings += [None] * len(x)
        else:
            array, warning = image_for(model, item.path)
            arrays.append(array[None])
            labels.append(str(item.path))
            warnings.append(warning)
    return labels, np.concatenate(arrays).reshape((-1, *want)), warnings


def _npz_images(path: Path) -> np.ndarray:
    """The image array of an .npz as uint8 samples, by the same rules (and caps) as a training .npz."""
    from cnnkit.data.arrays import pixels_to_uint8
    from cnnkit.data.npz import npz_keys, read_npz

    keys = npz_keys(str(path), hint=None)
    key = next((k for k in NPZ_IMAGE_KEYS if k in keys), None)
    if key is None:
        raise DataError(
            f"{path}: no image array found; expected one of {', '.join(NPZ_IMAGE_KEYS)} "
            f"(found: {', '.join(keys) or 'nothing'})"
        )
    x = read_npz(str(path), (key,))[key]
    if x.ndim < 3:
        raise DataError(f"{path}: array {key} has shape {x.shape}, expected images (N, H, W) or (N, H, W, C)")
    x = pixels_to_uint8(x, f"{path}: {key}")
    return x[..., None] if x.ndim == 3 else x


def predict(target, inputs: list[Path], *, top: int = 3) -> list[dict]:
    """One result per image: the top classes with probabilities, and `warning` when the picture was resized
    so much (or stretched) that the answer is suspect; the caller decides how to show it.

    `target` is a run folder, a .keras file, or an exported .tflite / .onnx file (run in its own runtime)."""
    from cnnkit.run.artefacts import kind_of
    from cnnkit.run.evaluate import resolve_target
    from cnnkit.run.modelfile import load_model

    if kind_of(target) in ("tflite", "onnx"):
        checked = check_inputs(inputs)
        labels, probs, names, warnings = _predict_artefact(Path(target), checked)
    else:
        resolved = resolve_target(target)
        checked = check_inputs(inputs)  # before load_model: that imports TensorFlow
        model = load_model(resolved.model_path)
        labels, batch, warnings = load_inputs(model, checked)
        probs = np.asarray(model.predict(batch, verbose=0, batch_size=256))
        names = resolved.run_info.get("class_names")
    if probs.shape[-1] == 1:
        probs = np.concatenate([1 - probs, probs], axis=1)
    names = names or [str(i) for i in range(probs.shape[1])]
    results = []
    for label, row, warning in zip(labels, probs, warnings):
        order = np.argsort(-row)[:top]
        results.append(
            {
                "input": label,
                "class": names[order[0]],
                "top": [{"class": names[i], "probability": float(row[i])} for i in order],
                "warning": warning,
            }
        )
    return results


def _predict_artefact(path: Path, inputs: list[Input]):
    """An exported .tflite/.onnx in its own runtime; class names from the export.json `cnnkit export` wrote."""
    from types import SimpleNamespace

    from cnnkit.run.artefacts import open_artefact
    from cnnkit.run.export import recorded

    runner = open_artefact(path)
    labels, batch, warnings = load_inputs(SimpleNamespace(input_shape=(None, *runner.input_shape)), inputs)
    return labels, runner.predict(batch), recorded(path).get("class_names"), warnings
