"""The spec side of the TensorFlow line: YAML -> a validated, normalised `Spec` and its `Summary`.

Lives here: yamlio (safe YAML with line marks), argtypes (argument rules), layers (the layer registry),
shapes and summary (shapes, params, MACs, receptive field), options (optimizer/loss/metric/... registries),
datasets (the dataset kinds and the data: keys each reads), defaults (every default, commented), parse (the spec
itself, which keeps its Summary), schema (JSON Schema of the spec).

May import: the standard library, pyyaml, cnnkit.errors, cnnkit.text. Never tensorflow, keras, cnnkit.data, cnnkit.run or
cnnkit.viz (the import contract in pyproject.toml, checked by `make lint` and tests/test_architecture.py).
"""

from cnnkit.spec.parse import Spec, load_spec

__all__ = ["Spec", "load_spec"]
