"""The caps on what a user's file may ask cnnkit to allocate, in one commented place.

A data file is untrusted input: a few kilobytes can declare an image of billions of pixels, an .npz
that unpacks to gigabytes, or a label of 1e12 (a trillion class names). Every reader checks what the
file *declares* against these caps before it reads or allocates anything, and refuses with one line.
"""

# Pixels (width x height) of one image file, checked from the header before any pixel is decoded.
# 64 megapixels is above every common camera's photo (48-50 MP phones) and decodes to at most 256 MB
# (RGBA); a 30000x30000 PNG "decompression bomb" of a few kilobytes would decode to 900 MB-3.6 GB.
MAX_IMAGE_PIXELS = 64_000_000

# Classes of a dataset: labels must be integers in [0, classes) with classes <= this. Above
# ImageNet-1k and CIFAR-100 by far; a label of 1e12 would otherwise ask for a trillion class names
# (MemoryError) and 1e30 would wrap to a negative int64.
MAX_CLASSES = 10_000

# Bytes the arrays of one data file (.npz, gzipped IDX) may unpack to, from the shapes and dtypes their
# headers declare. MNIST is 55 MB and CIFAR-10 184 MB as uint8; 4 GiB leaves room for float64 copies of both.
MAX_UNPACKED_BYTES = 4 * 1024**3
