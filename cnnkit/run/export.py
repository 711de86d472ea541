"""`cnnkit export`: a run's model as a SavedModel, .tflite (float or int8) or .onnx, with a parity check.

Every conversion goes through Keras' own `model.export` (the route Keras 3 supports; the TF Lite converter on a
Keras 3 model directly is what fails in tensorflow#62989/#63987). Then the artefact is run in its own runtime
(cnnkit.run.artefacts) on at least PARITY_IMAGES images of the run's data, and its probabilities are compared with
the .keras model's on the very same float32 input. The numbers go to export.json next to the artefact; a result
outside the tolerance raises ParityError (exit 4), the artefact kept for a look.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnkit import __version__
from cnnkit.errors import ModelFileError, ParityError, RunError, SpecError
from cnnkit.run.artefacts import check_installed, open_artefact
from cnnkit.run.folder import read_json, write_json

FORMATS = ("savedmodel", "tflite", "onnx")
QUANTIZE = ("int8",)
# Tolerances (README "Export"): a float artefact computes the same function up to float32 rounding, so every
# probability within 1e-4 and the same top-1 class on every image; int8 rounds weights and activations to 256
# levels, so its probabilities differ by design and only the accuracy is held: at most 1 point lower.
FLOAT_MAX_ABS_DIFF = 1e-4
FLOAT_MIN_AGREEMENT = 1.0
INT8_MAX_ACCURACY_DROP = 0.01
PARITY_IMAGES = 1000  # at least this many (the test split first, then validation and training images)
REPRESENTATIVE_IMAGES = 200  # int8 calibration: activation ranges from this many training images
REPORT = "export.json"
FILE_NAMES = {"savedmodel": "model.savedmodel", "tflite": "model.tflite", "onnx": "model.onnx"}


@dataclass
class ParityImages:
    x: np.ndarray  # float32 in [0, 1], laid out for the model's input
    y: np.ndarray  # int class ids
    sources: dict  # split -> how many images came from it
    representative: np.ndarray  # float32 training images for int8 calibration


def default_path(run_dir: Path, fmt: str, quantize: str | None) -> Path:
    name = FILE_NAMES[fmt]
    if quantize:
        stem, dot, suffix = name.partition(".")
        name = f"{stem}_{quantize}{dot}{suffix}"
    return run_dir / "export" / name


def check_request(fmt: str, quantize: str | None) -> None:
    """Everything about the request that can be refused before TensorFlow is imported."""
    if fmt not in FORMATS:
        raise SpecError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if quantize is not None and quantize not in QUANTIZE:
        raise SpecError(f"--quantize: expected one of {', '.join(QUANTIZE)}, got {quantize!r}")
    if quantize is not None and fmt != "tflite":
        raise SpecError(f"--quantize {quantize} applies to --format tflite only, not {fmt}")
    # The optional packages, checked before minutes of conversion.
    if fmt == "tflite":
        check_installed("ai_edge_litert.interpreter", "checking a .tflite export")
    if fmt == "onnx":
        check_installed("tf2onnx", "exporting to ONNX")
        check_installed("onnxruntime", "checking an .onnx export")


def export(
    target,
    fmt: str,
    *,
    quantize: str | None = None,
    out: Path | None = None,
    data_dir: str | None = None,
    images: int = PARITY_IMAGES,
) -> dict:
    """Convert, check parity, write export.json; return the report. ParityError when the check fails."""
    from cnnkit.run.evaluate import resolve_target
    from cnnkit.run.modelfile import load_model

    check_request(fmt, quantize)
    resolved = resolve_target(target)
    if resolved.run_dir is None:
        raise ModelFileError(
            f"{target}: export needs a run folder, whose data the parity check runs on",
            hint="pass the run folder that holds this model.keras",
        )
    if out is not None and fmt != "savedmodel" and Path(out).suffix.lower() != f".{fmt}":
        raise SpecError(
            f"--out {out}: an artefact of --format {fmt} is a .{fmt} file", hint=f"pass a path ending in .{fmt}"
        )
    model = load_model(resolved.model_path)
    data = parity_images(resolved, model, data_dir, images)
    path = Path(out) if out is not None else default_path(resolved.run_dir, fmt, quantize)
    started = time.perf_counter()
    write_artefact(model, fmt, path, quantize=quantize, representative=data.representative)
    seconds = time.perf_counter() - started
    report = {
        "artefact": str(path),
        "format": fmt,
        "quantize": quantize,
        "model": str(resolved.model_path),
        "bytes": _size(path),
        "keras_bytes": _size(resolved.model_path),
        "export_seconds": round(seconds, 2),
        "class_names": resolved.run_info.get("class_names"),
        "cnnkit": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **check_parity(model, path, data, quantize),
    }
    record(path, report)
    if not report["passed"]:
        error = ParityError(report["failure"], hint=f"the artefact and its numbers are kept in {path.parent}")
        error.report = report  # the CLI prints the table before the one-line error
        raise error
    return report


def parity_images(resolved, model, data_dir: str | None, wanted: int) -> ParityImages:
    """The run's test images, topped up from validation then training images to `wanted` (digits' test split has
    359). Every image carries its label, so accuracy before/after is measured on all of them."""
    from cnnkit.data.feed import arrange, feed_for
    from cnnkit.run.evaluate import load_test_split

    x, y, splits = load_test_split(resolved, None, data_dir, model)
    feed = feed_for(tuple(int(d) for d in model.input_shape[1:]), tuple(splits.x_test.shape[1:]), splits.source)
    xs, ys, sources = [x[:wanted]], [y[:wanted]], {"test": int(min(len(x), wanted))}
    for split, (sx, sy) in (("val", (splits.x_val, splits.y_val)), ("train", (splits.x_train, splits.y_train))):
        need = wanted - sum(len(part) for part in xs)
        if need <= 0 or sx is None or not len(sx):
            continue
        xs.append(arrange(sx[:need], feed))
        ys.append(sy[:need])
        sources[split] = int(min(len(sx), need))
    order = np.random.default_rng(0).permutation(len(splits.x_train))[:REPRESENTATIVE_IMAGES]
    representative = _scaled(arrange(splits.x_train[order], feed))
    return ParityImages(_scaled(np.concatenate(xs)), np.concatenate(ys).astype(np.int64), sources, representative)


def _scaled(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / np.float32(255.0)


def write_artefact(model, fmt: str, path: Path, *, quantize: str | None = None, representative=None) -> None:
    """model.export into a temporary sibling, then renamed into place: no half-written artefact at `path`."""
    from cnnkit.backend import tensorflow

    tf = tensorflow()
    path = Path(path)
    if path.exists() and fmt == "savedmodel" and not (path / "saved_model.pb").exists():
        raise RunError(
            f"{path} exists and is not a SavedModel folder; refusing to replace it", hint="pass another --out"
        )
    if path.is_dir() and fmt != "savedmodel":
        raise RunError(f"{path} is a folder; --format {fmt} writes a file", hint="pass a file name with --out")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunError(f"cannot create {path.parent}: {err.strerror or err}") from None
    # The same suffix: Keras checks it (".tflite").
    tmp = path.with_name(f".tmp{os.getpid()}-{path.name}")
    kwargs = {}
    if fmt == "tflite":
        # Builtin ops only: an artefact that needs the Flex delegate (SELECT_TF_OPS, Keras' default) would not run
        # in a plain LiteRT interpreter. A layer without a builtin kernel fails here, not on the device.
        kwargs["target_spec"] = {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}
    if quantize == "int8":
        # Post-training quantization: int8 weights and activations, their ranges calibrated on training images.
        # Input and output stay float32, so the artefact takes the same [0, 1] images as the .keras model.
        def calibration():
            for image in representative:
                yield [image[None]]

        kwargs.update(optimizations=[tf.lite.Optimize.DEFAULT], representative_dataset=calibration)
    # Keras traces a model only once it has been called (a freshly loaded one has not): call it once.
    model(np.zeros((1, *model.input_shape[1:]), np.float32), training=False)
    keras_format = {"savedmodel": "tf_saved_model", "tflite": "litert", "onnx": "onnx"}[fmt]
    try:
        with _quiet_converter():
            model.export(str(tmp), format=keras_format, verbose=False, **kwargs)
        if path.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except OSError as err:
        raise RunError(f"cannot write {path}: {err.strerror or err}") from None
    except Exception as err:  # a converter failure: TF's ConverterError, tf2onnx's errors, ValueError...
        raise RunError(
            f"{fmt} conversion failed: {str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}"
        ) from None
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def _quiet_converter():
    """The TF Lite converter and MLIR log pages of C++ notices on fd 2; Python errors still surface."""
    from cnnkit.backend import _quiet_stderr

    with _quiet_stderr():
        yield


def check_parity(model, path: Path, data: ParityImages, quantize: str | None) -> dict:
    """Run the artefact in its own runtime and the .keras model in Keras on the same images; compare."""
    try:
        runner = open_artefact(path)
    except ModelFileError as err:  # the artefact was written a moment ago: unreadable now means broken
        raise ParityError(f"parity failed: {path.name} cannot be run in its runtime: {err}") from None
    want = tuple(int(d) for d in model.input_shape[1:])
    if runner.input_shape != want:
        raise ParityError(f"{path} takes input {list(runner.input_shape)}, the .keras model {list(want)}")
    expected = _two_columns(np.asarray(model.predict(data.x, batch_size=256, verbose=0), dtype=np.float32))
    got = _two_columns(runner.predict(data.x))
    if got.shape != expected.shape:
        raise ParityError(f"{path} outputs {got.shape[1]} scores per image, the .keras model {expected.shape[1]}")
    diff = np.abs(got - expected)
    agreement = float((got.argmax(axis=1) == expected.argmax(axis=1)).mean())
    acc_keras = float((expected.argmax(axis=1) == data.y).mean())
    acc_artefact = float((got.argmax(axis=1) == data.y).mean())
    result = {
        "runtime": runner.runtime,
        "images": int(len(data.x)),
        "image_sources": data.sources,
        "max_abs_diff": float(diff.max()) if diff.size else 0.0,
        "mean_abs_diff": float(diff.mean()) if diff.size else 0.0,
        "top1_agreement": agreement,
        "accuracy_keras": acc_keras,
        "accuracy_artefact": acc_artefact,
        "accuracy_drop": acc_keras - acc_artefact,
    }
    if quantize:
        result["tolerance"] = {"accuracy_drop_max": INT8_MAX_ACCURACY_DROP}
        failure = None
        if result["accuracy_drop"] > INT8_MAX_ACCURACY_DROP:
            failure = (
                f"parity failed: {path.name} ({quantize}) reaches accuracy {acc_artefact:.2%} against the .keras "
                f"model's {acc_keras:.2%}, a drop of {100 * result['accuracy_drop']:.2f} points "
                f"(at most {100 * INT8_MAX_ACCURACY_DROP:g} allowed) on {len(data.x):,} images"
            )
    else:
        result["tolerance"] = {"max_abs_diff": FLOAT_MAX_ABS_DIFF, "top1_agreement_min": FLOAT_MIN_AGREEMENT}
        failure = None
        if result["max_abs_diff"] > FLOAT_MAX_ABS_DIFF or agreement < FLOAT_MIN_AGREEMENT:
            failure = (
                f"parity failed: {path.name} differs from the .keras model by max |Δprob| "
                f"{result['max_abs_diff']:.3g} (at most {FLOAT_MAX_ABS_DIFF:g} allowed) with top-1 agreement "
                f"{agreement:.2%} (100% required) on {len(data.x):,} images"
            )
    result["passed"] = failure is None
    if failure:
        result["failure"] = failure
    return result


def _two_columns(probs: np.ndarray) -> np.ndarray:
    """A single sigmoid unit as [P(0), P(1)], so that argmax is the predicted class for every head."""
    if probs.ndim == 2 and probs.shape[1] == 1:
        return np.concatenate([1 - probs, probs], axis=1)
    return probs


def _size(path: Path) -> int:
    path = Path(path)
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def record(path: Path, report: dict) -> None:
    """export.json beside the artefact holds one entry per artefact of that folder, by file name."""
    book = Path(path).parent / REPORT
    entries = read_json(book, {})
    entries[Path(path).name] = report
    write_json(book, entries)


def recorded(path: Path) -> dict:
    """The export.json entry of an artefact ({} when it was not made by cnnkit export)."""
    entries = read_json(Path(path).parent / REPORT, {})
    entry = entries.get(Path(path).name) if isinstance(entries, dict) else None
    return entry if isinstance(entry, dict) else {}
