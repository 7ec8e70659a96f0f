"""soft_pool2d against PyTorch's closed form, at equal thread counts.

    python benchmarks/soft_pool.py [--batch 32] [--threads 1 2]

The closed form is ``avg_pool2d(exp(x)·x, 2) / avg_pool2d(exp(x), 2)`` (unshifted, so it
overflows where SoftPool proper does not); both run in one process on the same float32
input of shape (batch, 64, 112, 112). Best of several runs, wall clock; ratios above 1
mean ndpool is faster (``--clock cpu`` times process CPU, steadier on a busy machine at
one thread). The backward compares ndpool's pullback with torch's forward plus
backward of the closed form minus its forward.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import ndpool


CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}
clock = time.perf_counter


def best(call, runs):
    times = []
    for _ in range(runs):
        start = clock()
        call()
        times.append(clock() - start)
    return min(times)


def closed_form(t):
    e = torch.exp(t)
    return torch.nn.functional.avg_pool2d(e * t, 2) / torch.nn.functional.avg_pool2d(e, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--clock", choices=sorted(CLOCK), default="wall",
                        help="cpu: process time (all threads summed), steadier on a "
                             "machine shared with other jobs")
    args = parser.parse_args()
    global clock
    clock = CLOCK[args.clock]
    x = np.random.default_rng(0).standard_normal((args.batch, 64, 112, 112)).astype(np.float32)
    t = torch.from_numpy(x)
    err = float(np.abs(ndpool.soft_pool2d(x, 2) - closed_form(t).numpy()).max())
    print(f"input {x.shape} float32, max |ndpool - torch| = {err:.2e}")
    for threads in args.threads:
        ndpool.set_num_threads(threads)
        torch.set_num_threads(threads)
        ours = best(lambda: ndpool.soft_pool2d(x, 2), args.runs)
        theirs = best(lambda: closed_form(t), args.runs)
        y, pullback = ndpool.vjp(ndpool.soft_pool2d, x, 2)
        dy = np.ones_like(y)
        ours_back = best(lambda: pullback(dy), args.runs)
        tg = t.clone().requires_grad_(True)

        def torch_both():
            tg.grad = None
            out = closed_form(tg)
            out.backward(torch.ones_like(out))

        theirs_back = best(torch_both, args.runs) - theirs
        print(f"threads={threads}: forward ndpool {ours * 1e3:.1f} ms, torch {theirs * 1e3:.1f} ms, "
              f"ratio {theirs / ours:.2f}; backward ndpool {ours_back * 1e3:.1f} ms, "
              f"torch {theirs_back * 1e3:.1f} ms, ratio {theirs_back / ours_back:.2f}")


if __name__ == "__main__":
    main()
