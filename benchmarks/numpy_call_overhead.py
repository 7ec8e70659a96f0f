"""What the DLPack check (arrays/dlpack.py) costs a call on a NumPy array.

    python benchmarks/numpy_call_overhead.py

Each public op against the op as it was generated before the check (its body
``return _impl(...)[0]`` alone), on a tiny input where the per-call cost is all there
is, in one process, interleaved, the minimum of many repeats (minima are what stays
stable on a shared machine); then the check itself.
"""
import timeit

import numpy as np

from ndpool import functional as F
from ndpool.arrays import is_dlpack


def before_the_check(op):
    """``op`` compiled from its signature as functional._public made it before."""
    signature = op._ndpool_signature
    names = ", ".join(f"{p}={p}" for p in signature.parameters)
    namespace = {"_impl": op._ndpool_impl}
    exec(f"def {op.__name__}{signature}:\n    return _impl({names})[0]\n", namespace)  # noqa: S102
    return namespace[op.__name__]


def main():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    cases = [("max_pool2d", lambda f: f(x, 2)), ("avg_pool2d", lambda f: f(x, 2)),
             ("global_avg_pool", lambda f: f(x)), ("adaptive_avg_pool2d", lambda f: f(x, 2))]
    for name, call in cases:
        new = getattr(F, name)
        old = before_the_check(new)
        assert (call(new) == call(old)).all()
        best = {"before": float("inf"), "after": float("inf")}
        for _ in range(40):
            for label, f in (("before", old), ("after", new)):
                seconds = timeit.timeit(lambda: call(f), number=2000) / 2000
                best[label] = min(best[label], seconds * 1e6)
        print(f"{name:20s} before {best['before']:6.2f} us  after {best['after']:6.2f} us  "
              f"added {best['after'] - best['before']:+.2f} us")
    names = {"x": x, "_ndarray": np.ndarray, "_is_dlpack": is_dlpack}
    check = min(timeit.repeat("type(x) is not _ndarray and _is_dlpack(x)", globals=names,
                              number=1_000_000, repeat=9)) * 1e3
    empty = min(timeit.repeat("pass", globals=names, number=1_000_000, repeat=9)) * 1e3
    print(f"the check alone: {check - empty:.0f} ns ({check:.1f} ns, an empty statement "
          f"{empty:.1f} ns)")


if __name__ == "__main__":
    main()
