"""train.precision -> the Keras dtype policy a run trains with, and why.

Mixed precision computes in 16 bits and keeps the variables in float32. It pays only where the hardware has
16-bit matrix units: tensor cores on a GPU (float16, compute capability >= 7.0), AMX or AVX512-BF16 on a CPU
(bfloat16). Elsewhere the 16-bit kernels are emulated and slower than float32, so `auto` stays float32 there.
The CPU rule is a measured one: bench/train_throughput.py times `precision: auto` against float32 and the plain
script in one run (bench/results.json); keep `BF16_CPU_FLAGS` in step with what that benchmark shows.
"""

from __future__ import annotations

from pathlib import Path

# /proc/cpuinfo flags of CPUs where bfloat16 was measured faster than float32: AMX (Sapphire Rapids and later), the
# notes' MNIST net x1.9 in plain Keras on the project's 2-core Xeon (issue 16's probe). AVX512-BF16 alone (Cooper
# Lake, Zen 4) has bfloat16 dot products too, but no measurement yet: `auto` stays float32 there, and
# `precision: mixed_bfloat16` is one line away.
BF16_CPU_FLAGS = ("amx_bf16",)


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The first CPU's flags; empty where /proc/cpuinfo does not exist (macOS, Windows)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def resolve(tf, requested: str, device_used: str, flags: set[str] | None = None) -> tuple[str, str]:
    """(policy name, reason). `requested` is train.precision; an explicit policy is taken as asked."""
    if requested != "auto":
        return requested, "train.precision"
    if device_used == "gpu":
        capability = _gpu_capability(tf)
        if capability is not None and capability >= (7, 0):
            return "mixed_float16", f"auto: GPU with tensor cores (compute capability {capability[0]}.{capability[1]})"
        return "float32", "auto: GPU without tensor cores"
    flags = cpu_flags() if flags is None else flags
    native = [flag for flag in BF16_CPU_FLAGS if flag in flags]
    if native:
        return "mixed_bfloat16", f"auto: CPU with {'/'.join(native)}"
    return "float32", "auto: CPU without AMX bfloat16 units"


def _gpu_capability(tf) -> tuple[int, int] | None:
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    details = tf.config.experimental.get_device_details(gpus[0])
    capability = details.get("compute_capability")
    return tuple(capability) if capability else None
