"""What the user looks at: pictures (matplotlib PNGs) and rich terminal tables.

Lives here: plots (every picture, drawn from arrays; no TensorFlow), pictures (glue from run folders and models
to plots), probe (feature maps and kernels read out of a Keras model), kernels (the hand-made kernel
playground), tables (rich tables for summary, evaluate and time).

May import: cnnkit.run, cnnkit.data, cnnkit.spec, cnnkit.files, cnnkit.errors, cnnkit.text. Never cnnkit.cli.
plots and tables import neither TensorFlow, Keras nor cnnkit.run, so `plot architecture` and `summary` stay
instant (the import contract in pyproject.toml).
"""
