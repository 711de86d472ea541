"""What the user looks at: pictures (matplotlib PNGs) and rich terminal tables.

Lives here: plots (every picture, drawn from arrays with matplotlib; no TensorFlow), architecture (the architecture
picture, drawn with Pillow: no matplotlib, no numpy), pictures (glue from run folders and models
to plots), probe (feature maps and kernels read out of a Keras model), kernels (the hand-made kernel
playground), tables (rich tables for summary, evaluate and time), side_process (a second process that draws
the pictures needing only arrays while `train` draws those that need the model).

May import: cnnkit.run, cnnkit.data, cnnkit.spec, cnnkit.files, cnnkit.errors, cnnkit.text. Never cnnkit.cli.
plots, architecture and tables import neither TensorFlow, Keras nor cnnkit.run, and architecture not even matplotlib,
so `plot architecture` and `summary` stay instant (the import contracts in pyproject.toml).
"""
