"""`summary --keras`: build the real model and hold our arithmetic against Keras' own."""

from __future__ import annotations

from cnnkit.errors import CnnkitError


class KerasMismatch(CnnkitError):
    """Our shape/param rules disagree with Keras: a cnnkit bug, reported loudly."""

    exit_code = 1


def keras_rows(spec) -> list[dict]:
    from cnnkit.run.build import build_model

    model = build_model(spec)
    rows = []
    for index, layer in enumerate(model.layers):
        trainable = sum(int(w.numpy().size) for w in layer.trainable_weights)
        rows.append(
            {
                "index": index,
                "type": type(layer).__name__,
                "name": layer.name,
                "output_shape": [int(d) for d in layer.output.shape[1:]],
                "params": int(layer.count_params()),
                "trainable_params": trainable,
            }
        )
    return rows


def compare_with_keras(spec, summary) -> list[dict]:
    rows = keras_rows(spec)
    for ours, theirs in zip(summary.layers, rows):
        if (ours.output_shape, ours.params) != (theirs["output_shape"], theirs["params"]):
            raise KerasMismatch(
                f"layers[{ours.index}] {ours.type}: cnnkit computed shape {ours.output_shape} with "
                f"{ours.params} params, Keras built {theirs['output_shape']} with {theirs['params']}",
                hint="this is a cnnkit bug; please report it with the spec",
            )
    return rows
