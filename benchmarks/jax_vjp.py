"""ndpool.jax against XLA's own pooling on the CPU, jitted, forward and vjp.

    python benchmarks/jax_vjp.py [--repeats 7] [--config vgg]

XLA's pooling is ``lax.reduce_window`` (what ``flax.linen.max_pool`` calls); its
gradient is XLA's select-and-scatter. Both sides run under ``jax.jit`` in one process;
the table gives medians of repeats and the ratio XLA / ndpool (above 1: ndpool faster).

XLA's CPU runtime takes each result buffer from ``malloc``, and glibc serves blocks
this large as fresh pages that the kernel writing them first has to fault in; on these
machines that costs more than the pooling itself (ndpool's handler asks for huge pages
on its results, which cuts it). Run it once as it is and once with
``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1000000000000`` (or under jemalloc /
tcmalloc) to see both; the header says which allocator settings were in force.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

import jax
import jax.numpy as jnp
import ndpool
import ndpool.jax as nj

CONFIGS = {  # name: (shape, kernel, stride, padding)
    "vgg": ((16, 64, 224, 224), 2, 2, 0),
    "stem": ((32, 64, 112, 112), 3, 2, 1),
    "sppf": ((16, 512, 20, 20), 5, 1, 2),
    "spp": ((16, 512, 20, 20), 13, 1, 6),
}


def xla_max_pool(kernel, stride, padding):
    pads = ((0, 0), (0, 0), (padding, padding), (padding, padding))
    return lambda x: jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, kernel, kernel),
                                           (1, 1, stride, stride), pads)


def median_ms(run, repeats: int) -> float:
    run()   # compile and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def measure(name: str, repeats: int):
    shape, kernel, stride, padding = CONFIGS[name]
    x = jnp.asarray(np.random.default_rng(0).standard_normal(shape, dtype=np.float32))
    ours = lambda t: nj.max_pool2d(t, kernel, stride=stride, padding=padding)
    rows = []
    for label, pool in (("ndpool.jax", ours), ("XLA reduce_window", xla_max_pool(kernel, stride, padding))):
        forward = jax.jit(pool)
        y = forward(x)
        dy = jnp.ones_like(y)
        backward = jax.jit(lambda t, g, pool=pool: jax.vjp(pool, t)[1](g)[0])
        rows.append((label, median_ms(lambda: forward(x).block_until_ready(), repeats),
                     median_ms(lambda: backward(x, dy).block_until_ready(), repeats)))
    np.testing.assert_array_equal(np.asarray(jax.jit(ours)(x)),
                                  np.asarray(jax.jit(xla_max_pool(kernel, stride, padding))(x)))
    return shape, kernel, stride, rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--config", choices=sorted(CONFIGS), nargs="*", default=["vgg", "spp"])
    args = parser.parse_args(argv)
    allocator = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_") or k == "LD_PRELOAD"}
    print(f"# jax {jax.__version__}, ndpool {ndpool.show_config(mode='dict')['simd']}, "
          f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}; allocator "
          f"settings: {allocator or 'glibc defaults'}")
    print("| config | shape | op | ndpool ms | XLA ms | XLA / ndpool |")
    print("|---|---|---|---|---|---|")
    for name in args.config:
        shape, kernel, stride, ((_, f_ours, b_ours), (_, f_xla, b_xla)) = measure(name, args.repeats)
        size = "×".join(map(str, shape))
        print(f"| {name} k{kernel} s{stride} | {size} | forward | {f_ours:.1f} | {f_xla:.1f} | {f_xla / f_ours:.2f} |")
        print(f"| {name} k{kernel} s{stride} | {size} | vjp | {b_ours:.1f} | {b_xla:.1f} | {b_xla / b_ours:.2f} |")


if __name__ == "__main__":
    main()
