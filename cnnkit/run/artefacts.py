"""Exported models run in their own runtime: TensorFlow for a SavedModel, LiteRT for .tflite, onnxruntime for .onnx.

`open_artefact(path)` gives a Runner with the input shape the artefact expects and `predict(x)` for float32 images
in [0, 1] (the same input the .keras model takes), returning one probability row per image. `cnnkit export` checks
parity through it and `cnnkit predict` classifies with it, so the check runs the very code path a user ships.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from cnnkit.errors import MissingDependency, ModelFileError

EXTRA_HINT = "pip install 'cnnkit[export]'"
# The PyPI name of each optional module, for the one-line error.
PACKAGES = {"ai_edge_litert.interpreter": "ai-edge-litert", "onnxruntime": "onnxruntime", "tf2onnx": "tf2onnx"}
SUFFIXES = {".tflite": "tflite", ".onnx": "onnx"}
BATCH = 256


def require(module: str, purpose: str):
    """Import an optional dependency of the `export` extra, or a one-line MissingDependency naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = PACKAGES.get(module, module)
        raise MissingDependency(
            f"{purpose} needs the Python package {package}, which is not installed", hint=EXTRA_HINT
        ) from None


def check_installed(module: str, purpose: str) -> None:
    """The same one-line error as `require`, without importing (tf2onnx would import TensorFlow)."""
    try:
        found = importlib.util.find_spec(module) is not None
    except ImportError:  # a parent package is missing
        found = False
    if not found:
        package = PACKAGES.get(module, module)
        raise MissingDependency(
            f"{purpose} needs the Python package {package}, which is not installed", hint=EXTRA_HINT
        )


@dataclass
class Runner:
    kind: str  # savedmodel | tflite | onnx
    runtime: str  # what ran it, for export.json ("onnxruntime 1.32.0 (CPU)")
    input_shape: tuple[int, ...]  # without the batch dimension
    _predict: Callable[[np.ndarray], np.ndarray]

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        rows = [np.asarray(self._predict(x[i : i + BATCH]), dtype=np.float32) for i in range(0, len(x), BATCH)]
        return np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)


def kind_of(path: Path) -> str | None:
    """savedmodel | tflite | onnx by what the path is; None for anything else (a run folder, a .keras file)."""
    path = Path(path)
    if path.is_dir() and (path / "saved_model.pb").exists():
        return "savedmodel"
    return SUFFIXES.get(path.suffix.lower())


def open_artefact(path: Path) -> Runner:
    path = Path(path)
    kind = kind_of(path)
    if kind is None:
        raise ModelFileError(f"{path}: expected a SavedModel folder, a .tflite or an .onnx file")
    if kind != "savedmodel" and not path.is_file():
        raise ModelFileError(f"{path}: file not found")
    return {"savedmodel": _savedmodel, "tflite": _tflite, "onnx": _onnx}[kind](path)


def _savedmodel(path: Path) -> Runner:
    from cnnkit.backend import tensorflow

    tf = tensorflow()
    try:
        loaded = tf.saved_model.load(str(path))
    except (OSError, ValueError, tf.errors.OpError) as err:  # OpError: e.g. DataLossError on a checksum mismatch
        raise ModelFileError(f"{path}: not a loadable SavedModel ({_first_line(err)})") from None
    serve = loaded.signatures["serving_default"]
    (spec,) = serve.structured_input_signature[1].values()
    shape = tuple(int(d) for d in spec.shape[1:])

    def run(x):
        (out,) = serve(tf.constant(x)).values()
        return out.numpy()

    return Runner("savedmodel", f"TensorFlow {tf.__version__} (tf.saved_model.load)", shape, run)


def _tflite(path: Path) -> Runner:
    litert = require("ai_edge_litert.interpreter", "running a .tflite model")
    from cnnkit.backend import _quiet_stderr

    try:
        with _quiet_stderr():  # LiteRT's C++ "Created TensorFlow Lite XNNPACK delegate" notice
            interpreter = litert.Interpreter(model_path=str(path))
    except (ValueError, RuntimeError) as err:
        raise ModelFileError(f"{path}: not a readable .tflite model ({_first_line(err)})") from None
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    shape = tuple(int(d) for d in inp["shape"][1:])
    allocated = [None]

    def run(x):
        if allocated[0] != len(x):  # the batch dimension is dynamic (-1): size it to this batch
            interpreter.resize_tensor_input(inp["index"], [len(x), *shape])
            with _quiet_stderr():
                interpreter.allocate_tensors()
            allocated[0] = len(x)
        interpreter.set_tensor(inp["index"], _quantize(x, inp))
        interpreter.invoke()
        return _dequantize(interpreter.get_tensor(out["index"]), out)

    from ai_edge_litert import __version__ as version

    return Runner("tflite", f"LiteRT {version} (ai_edge_litert.Interpreter)", shape, run)


def _quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    """A fully integer model takes int8/uint8 input: x / scale + zero_point. A float-input model takes x as is."""
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return x.astype(dtype)
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)


def _dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    if np.dtype(detail["dtype"]).kind == "f":
        return y
    scale, zero = detail["quantization"]
    return (y.astype(np.float32) - zero) * scale


def _onnx(path: Path) -> Runner:
    ort = require("onnxruntime", "running an .onnx model")
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own Fail/InvalidProtobuf types for unreadable files
        raise ModelFileError(f"{path}: not a readable .onnx model ({_first_line(err)})") from None
    (inp,) = session.get_inputs()
    shape = tuple(int(d) for d in inp.shape[1:])

    def run(x):
        return session.run(None, {inp.name: x})[0]

    return Runner("onnx", f"onnxruntime {ort.__version__} (CPU)", shape, run)


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
