"""The pictures of a run: glue between run folders / models and the drawing code in plots.py.

Imports of cnnkit.data, cnnkit.run, numpy and matplotlib stay inside the functions that need them: `plot architecture`
and `plot kernels` load this module too, and must start fast (bench/pictures_speed.py: < 1 s).
"""

from __future__ import annotations

from pathlib import Path

from cnnkit.errors import CnnkitError, DataError

PLOTS = "plots"


def curves(run_dir: Path, out: Path | None = None) -> Path:
    from cnnkit.run.folder import read_json, resolve_run
    from cnnkit.spec.parse import load_spec

    run_dir = resolve_run(run_dir, need="history.json")
    history = read_json(run_dir / "history.json", {})
    if not history:
        raise CnnkitError(f"run {run_dir} has no completed epoch yet")
    return _curves(history, load_spec(run_dir / "spec.yaml").train["monitor"], out or run_dir / PLOTS / "curves.png")


def _curves(history: dict, monitor: str, out: Path) -> Path:
    return _curves_drawing(history, monitor, out).draw()


def _curves_drawing(history: dict, monitor: str, out: Path):
    from cnnkit.viz.side_process import Drawing

    history = {k: [float(x) for x in v] for k, v in history.items() if k != "learning_rate"}
    return Drawing("curves", out, options={"history": history, "monitor": monitor if monitor in history else "loss"})


def confusion(
    run_or_model,
    out: Path | None = None,
    *,
    data: str | None = None,
    data_dir: str | None = None,
    evaluation=None,
) -> list[Path]:
    """Confusion matrix and the most confidently misclassified test images (`evaluation`: an Evaluation in hand)."""
    result = evaluation or _evaluate(run_or_model, data, data_dir)
    return [d.draw() for d in _confusion_drawings(result, out or _plot_folder(run_or_model, out) / "confusion.png")]


def _confusion_drawings(result, cm_path: Path) -> list:
    """The confusion matrix, and (for image inputs) the grid of the most confident mistakes beside it."""
    import numpy as np

    from cnnkit.viz.plots import chosen_mistakes
    from cnnkit.viz.side_process import Drawing

    arrays, names = result.predictions, list(result.class_names) if result.class_names is not None else None
    drawings = [Drawing("confusion", cm_path, {"cm": np.asarray(result.confusion_matrix)}, {"class_names": names})]
    mis_path = cm_path.with_name(cm_path.stem.replace("confusion", "misclassified") or "misclassified")
    if mis_path == cm_path:
        mis_path = cm_path.with_name(cm_path.stem + "_misclassified.png")
    images = arrays.x
    if images.ndim == 3 and images.shape[-1] != 1:  # 1-D specs read images as rows; show them as images again
        images = images[..., None]
    if images.ndim == 4:
        # Only the images shown go into the drawing: the side process needs 16, not the whole test set.
        chosen = chosen_mistakes(images, arrays.y, arrays.y_pred, arrays.confidence)
        counts = {"wrong": chosen.pop("wrong"), "total": chosen.pop("total")}
        drawings.append(Drawing("mistakes", mis_path.with_suffix(".png"), chosen, {"class_names": names, **counts}))
    return drawings


def filters(run_or_model, out: Path | None = None, *, layer: int | None = None, model=None) -> Path:
    model = model or _load_model(run_or_model)
    return _filters_drawing(model, layer, out or _plot_folder(run_or_model, None) / "filters.png").draw()


def _filters_drawing(model, layer: int | None, out: Path):
    from cnnkit.viz.probe import conv_kernel, conv_layer_indices
    from cnnkit.viz.side_process import Drawing

    if layer is None:
        convs = conv_layer_indices(model)
        if not convs:
            raise CnnkitError(f"model '{model.name}' has no convolution layer to show filters of")
        layer = convs[0]
    name, kernel = conv_kernel(model, layer)
    title = (
        f"layer {layer} ({name}): {kernel.shape[-1]} learned kernels "
        f"{'×'.join(str(d) for d in kernel.shape[:-2])}×{kernel.shape[-2]}"
    )
    return Drawing("filters", out, {"kernel": kernel}, {"title": title})


def feature_maps(
    run_or_model,
    out: Path | None = None,
    *,
    image: Path | None = None,
    index: int = 0,
    data: str | None = None,
    data_dir: str | None = None,
    model=None,
    test_x=None,
) -> Path:
    from cnnkit.data.images import read_image_for
    from cnnkit.viz.plots import plot_feature_maps
    from cnnkit.viz.probe import feature_maps as maps_for

    target = None
    if model is None:
        from cnnkit.run.evaluate import check_data, resolve_target

        target = resolve_target(run_or_model)  # once: it reads run.json and parses the spec
        # Every path the user named is checked before _load_model imports TensorFlow.
        if image is not None:
            from cnnkit.data.images import check_image

            check_image(image)
        elif test_x is None:
            check_data(target, data)
        model = _load_model(target)
    want = tuple(int(d) for d in model.input_shape[1:])
    if image is not None:
        sample = read_image_for(model, image)
    elif test_x is not None:
        sample = test_x[index].astype("float32") / 255.0
    else:
        from cnnkit.run.evaluate import load_test_split, resolve_target

        x, _, _ = load_test_split(target or resolve_target(run_or_model), data, data_dir, model)
        if not 0 <= index < len(x):
            raise DataError(f"test image #{index} does not exist: the test split has {len(x)} images (0..{len(x) - 1})")
        sample = x[index].astype("float32") / 255.0
    if sample.shape != want:
        raise DataError(f"image is {'×'.join(map(str, sample.shape))} but the model expects {'×'.join(map(str, want))}")
    shown = sample if sample.ndim == 3 else sample[..., None]
    return plot_feature_maps(
        shown, maps_for(model, sample), out or _plot_folder(run_or_model, None) / "feature_maps.png"
    )


def architecture(spec_file: Path, out: Path) -> Path:
    from cnnkit.spec.parse import load_spec
    from cnnkit.viz.architecture import plot_architecture

    return plot_architecture(load_spec(spec_file).summary.to_dict(), out)


def kernels(image_path: Path, names: list[str], out: Path, *, strides: int = 1, padding: str = "same") -> Path:
    from cnnkit.viz.kernels import PADDINGS, conv2d, get_kernel, load_image
    from cnnkit.viz.plots import plot_kernel_playground

    if padding not in PADDINGS:
        raise CnnkitError(f"--padding must be one of {', '.join(PADDINGS)}. Received: {padding!r}")
    if strides < 1:
        raise CnnkitError(f"--strides must be a positive integer. Received: {strides}")
    image = load_image(image_path)
    chosen = {name: get_kernel(name) for name in names}
    results = [(name, conv2d(image, k, strides=(strides, strides), padding=padding)) for name, k in chosen.items()]
    return plot_kernel_playground(image, results, out, kernels=chosen)


def draw_run_pictures(
    run_dir: Path, *, model, splits, feed, spec, history: dict, summary=None, evaluation=None, run_info=None
) -> list[Path]:
    """Every picture of a finished run, into RUN/plots/ (called at the end of `cnnkit train`).

    Uses what `train` holds in memory (model, arrays, spec, history, and the test set's `evaluation`, whose one
    predict pass gave the run's test metrics) rather than reading it back from disk or predicting again. The
    pictures drawn from arrays alone go to a second process (cnnkit.viz.side_process) while this one draws those
    that need the model (Grad-CAM, filters, feature maps).
    """
    from cnnkit.viz.architecture import plot_architecture
    from cnnkit.viz.probe import conv_layer_indices
    from cnnkit.viz.side_process import SideProcess

    run_dir = Path(run_dir)
    folder = run_dir / PLOTS
    summary = summary or spec.summary
    has_convs = bool(conv_layer_indices(model))
    with SideProcess() as side:  # started first: its imports overlap the work below
        aside = [_curves_drawing(history, spec.train["monitor"], folder / "curves.png")]
        if evaluation is not None:
            aside += _confusion_drawings(evaluation, folder / "confusion.png")
        side.submit(aside)
        here = [plot_architecture(summary.to_dict(), folder / "architecture.png")]
        test_x = evaluation.predictions.x if evaluation is not None else None
        if evaluation is not None and test_x.ndim in (3, 4):  # an image or a sequence: something to lay a heat map on
            from cnnkit.viz.gradcam import draw_misclassified

            here.append(draw_misclassified(run_dir, model, evaluation))
        if has_convs:
            here.append(filters(run_dir, model=model))
            if test_x is not None:
                here.append(feature_maps(run_dir, model=model, test_x=test_x))
        paths = side.finish() + here
    from cnnkit.viz.report import write_report  # last: the page embeds every picture above

    paths.append(write_report(run_dir, run_info=run_info))
    return paths


def _evaluate(run_or_model, data, data_dir):
    from cnnkit.run.evaluate import evaluate

    return evaluate(run_or_model, data=data, data_dir=data_dir)


def _load_model(run_or_target):
    """The model, for a forward pass or its weights only: not compiled (no optimizer, loss or metrics to build)."""
    from cnnkit.run.evaluate import Target, resolve_target
    from cnnkit.run.modelfile import load_model

    target = run_or_target if isinstance(run_or_target, Target) else resolve_target(run_or_target)
    return load_model(target.model_path, compile=False)


def _plot_folder(run_or_model, out) -> Path:
    from cnnkit.run.folder import resolve_run

    path = Path(run_or_model)
    if path.suffix == ".keras":
        return path.parent
    return resolve_run(path) / PLOTS
