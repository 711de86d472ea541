"""Classify image files (PNG/JPEG/...) or the arrays of an .npz with a trained model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnkit.errors import DataError


def load_inputs(model, inputs: list[Path]) -> tuple[list[str], np.ndarray]:
    """(labels, float32 batch in [0, 1]) from image files and/or .npz files."""
    from cnnkit.data.images import read_image_for

    want = tuple(int(d) for d in model.input_shape[1:])
    labels, arrays = [], []
    for path in inputs:
        path = Path(path)
        if path.suffix.lower() == ".npz":
            x = _npz_images(path)
            from cnnkit.data.feed import arrange, feed_for

            x = arrange(x, feed_for(want, tuple(x.shape[1:]), str(path)))
            arrays.append(x.astype(np.float32) / (255.0 if x.dtype == np.uint8 else 1.0))
            labels += [f"{path.name}[{i}]" for i in range(len(x))]
        else:
            arrays.append(read_image_for(model, path)[None])
            labels.append(str(path))
    return labels, np.concatenate(arrays).reshape((-1, *want))


def _npz_images(path: Path) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as data:
            key = next((k for k in ("x_test", "x", "images", "x_train") if k in data.files), None)
            if key is None:
                raise DataError(
                    f"{path}: no image array found; expected one of x_test, x, images, x_train "
                    f"(found: {', '.join(data.files) or 'nothing'})"
                )
            x = data[key]
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except ValueError as err:
        raise DataError(f"{path}: cannot read arrays ({err})") from None
    except OSError as err:
        raise DataError(f"{path}: not an .npz file ({err})") from None
    if x.dtype.kind == "f":
        if not np.isfinite(x).all():
            raise DataError(f"{path}: array {key} contains NaN or inf")
        if x.max() <= 1.0:
            x = np.round(x * 255)
        x = np.clip(x, 0, 255).astype(np.uint8)
    if x.ndim == 3:
        x = x[..., None]
    return x


def predict(target, inputs: list[Path], *, top: int = 3) -> list[dict]:
    from cnnkit.run.artefacts import kind_of
    from cnnkit.run.evaluate import resolve_target
    from cnnkit.run.modelfile import load_model

    if kind_of(target) in ("tflite", "onnx"):
        labels, probs, names = _predict_artefact(Path(target), inputs)
    else:
        resolved = resolve_target(target)
        model = load_model(resolved.model_path)
        labels, batch = load_inputs(model, inputs)
        probs = np.asarray(model.predict(batch, verbose=0, batch_size=256))
        names = resolved.run_info.get("class_names")
    if probs.shape[-1] == 1:
        probs = np.concatenate([1 - probs, probs], axis=1)
    names = names or [str(i) for i in range(probs.shape[1])]
    results = []
    for label, row in zip(labels, probs):
        order = np.argsort(-row)[:top]
        results.append(
            {
                "input": label,
                "class": names[order[0]],
                "top": [{"class": names[i], "probability": float(row[i])} for i in order],
            }
        )
    return results


def _predict_artefact(path: Path, inputs: list[Path]):
    """An exported .tflite/.onnx in its own runtime; class names from the export.json `cnnkit export` wrote."""
    from types import SimpleNamespace

    from cnnkit.run.artefacts import open_artefact
    from cnnkit.run.export import recorded

    runner = open_artefact(path)
    labels, batch = load_inputs(SimpleNamespace(input_shape=(None, *runner.input_shape)), inputs)
    return labels, runner.predict(batch), recorded(path).get("class_names")
