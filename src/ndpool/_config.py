"""What this build of ndpool is and what it runs on: ``ndpool.show_config()``."""
from __future__ import annotations

import platform
import sys
from typing import Optional

from . import _core

MODES = ("stdout", "dicts", "dict")


def _cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else the platform's word."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith(("model name", "Model", "CPU part")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def config() -> dict:
    """The build and run-time settings as one flat dict (what ``show_config(mode="dict")``
    returns)."""
    from . import __version__

    simd = _core.simd_info()
    return {
        "version": __version__,
        "simd": simd["simd"],
        "simd_built": list(simd["simd_built"]),
        "simd_supported": list(simd["simd_supported"]),
        "simd_forced": simd["simd_forced"] or None,
        "threads": int(_core.get_num_threads()),
        "cache_limit_mb": _core.cache_limit() // 2**20,
        "cache_used_mb": _core.cached_bytes() / 2**20,
        "cpu": _cpu_name(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
    }


def show_config(mode: str = "stdout") -> Optional[dict]:
    """Print (or return) the SIMD levels built and in use, the threads and the buffer cache.

    The compiled kernels are built once per SIMD level (``baseline`` for any CPU of the
    architecture; ``avx2`` and ``avx512`` on x86-64; ``neon`` on AArch64); at import the
    best level this CPU runs is chosen, or the one the ``NDPOOL_SIMD`` environment
    variable names. ``mode="dict"`` returns the settings as a dict instead of printing.

    >>> import ndpool
    >>> info = ndpool.show_config(mode="dict")
    >>> info["simd"] in info["simd_built"] and info["simd_built"][0] == "baseline"
    True
    >>> info["threads"] == ndpool.get_num_threads()
    True
    """
    if mode not in MODES:
        raise ValueError(f"show_config: mode={mode!r} is not one of {MODES}")
    info = config()
    if mode in ("dict", "dicts"):
        return info
    forced = f" (forced by NDPOOL_SIMD={info['simd_forced']})" if info["simd_forced"] else ""
    lines = [
        f"ndpool {info['version']} on {info['cpu']} ({info['machine']}), Python {info['python']}",
        f"  SIMD level in use: {info['simd']}{forced}",
        f"  SIMD levels built: {', '.join(info['simd_built'])}",
        f"  SIMD levels this CPU runs: {', '.join(info['simd_supported'])}",
        f"  threads: {info['threads']} (NDPOOL_NUM_THREADS, ndpool.set_num_threads)",
        f"  buffer cache: {info['cache_used_mb']:.1f} of {info['cache_limit_mb']} MB held "
        "(NDPOOL_CACHE_MB)",
    ]
    print("\n".join(lines))
    return None
