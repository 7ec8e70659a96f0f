"""Write the golden vectors in tests/golden/ from PyTorch (run: python scripts/make_golden.py).

Each case is one small compressed .npz: the input ``x``, the ndpool call (``call``: op
name, positional and keyword arguments as JSON; array arguments stored beside it as
``arg_<name>`` and named in the JSON as {"$array": "arg_<name>"}), PyTorch's output
``y``, its ``indices`` when the op returns them, a fixed upstream gradient ``dy`` and
PyTorch's input gradient ``dx``. tests/test_golden.py checks ndpool against them
without PyTorch.
"""
from __future__ import annotations

import json
import pathlib

import numpy as np
import torch

F = torch.nn.functional
OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "golden"


def tie_free(rng, shape, dtype=np.float32, positive=False):
    n = int(np.prod(shape))
    perm = rng.permutation(n).astype(np.float64)
    values = (perm + 1) / n if positive else (perm - n // 2) / 8
    return values.reshape(shape).astype(dtype)


def min_pool(rank):
    def run(t, *args, **kw):
        out = getattr(F, f"max_pool{rank}d")(-t, *args, **kw)
        return (-out[0], out[1]) if isinstance(out, tuple) else -out
    return run


def channels_last(fn):
    """torch on the channels-first permutation of a (N, *spatial, C) input."""
    def run(t, *args, **kw):
        out = fn(t.movedim(-1, 1), *args, **kw)
        if isinstance(out, tuple):
            return tuple(o.movedim(1, -1) for o in out)
        return out.movedim(1, -1)
    return run


def torch_kwargs(kwargs):
    """ndpool-only keywords dropped (samples reaches torch as _random_samples)."""
    return {k: v for k, v in kwargs.items() if k not in ("layout", "ties", "samples")}


def case(name, op, x, args=(), kwargs=None, torch_fn=None, torch_extra=None, grad=True,
         arrays=None):
    """Run ``torch_fn(x, *args, **kwargs)`` and save everything ndpool's call needs."""
    kwargs = dict(kwargs or {})
    arrays = dict(arrays or {})
    call_args = [({"$array": f"arg_{a[1:]}"} if isinstance(a, str) and a.startswith("@")
                  else a) for a in args]
    torch_args = [torch.from_numpy(arrays[a[1:]]) if isinstance(a, str) and a.startswith("@")
                  else a for a in args]
    call_kwargs = {k: ({"$array": f"arg_{v[1:]}"} if isinstance(v, str) and v.startswith("@")
                       else v) for k, v in kwargs.items()}
    t_kwargs = {k: (torch.from_numpy(arrays[v[1:]]) if isinstance(v, str)
                    and v.startswith("@") else v) for k, v in torch_kwargs(kwargs).items()}
    t_kwargs.update(torch_extra or {})
    work = x.astype(np.float64) if x.dtype.kind in "iu" else x
    t = torch.from_numpy(work.copy()).requires_grad_(grad)
    out = torch_fn(t, *torch_args, **t_kwargs)
    y, idx = out if isinstance(out, tuple) else (out, None)
    record = {"x": x, "y": y.detach().numpy().astype(x.dtype),
              "call": np.array(json.dumps({"op": op, "args": call_args,
                                           "kwargs": call_kwargs}))}
    if idx is not None:
        record["indices"] = idx.numpy()
    if grad:
        dy = np.random.default_rng(len(name)).standard_normal(y.shape).astype(x.dtype)
        y.backward(torch.from_numpy(dy))
        record["dy"], record["dx"] = dy, t.grad.numpy()
    for key, value in arrays.items():
        record[f"arg_{key}"] = value
    np.savez_compressed(OUT / f"{name}.npz", **record)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.npz"):
        old.unlink()
    rng = np.random.default_rng(2024)
    x1, x2, x3 = (tie_free(rng, s) for s in [(2, 3, 11), (2, 2, 7, 9), (1, 2, 5, 6, 5)])
    ri = dict(return_indices=True)

    # max / min: dilation, ceil_mode, padding, non-square kernels, layouts, NaN, ties
    case("max_pool1d", "max_pool1d", x1, (3,), dict(stride=2, padding=1, dilation=2,
         ceil_mode=True, **ri), F.max_pool1d)
    case("max_pool2d", "max_pool2d", x2, ((3, 2),), dict(stride=(2, 1), padding=(1, 0),
         dilation=(1, 2), ceil_mode=True, **ri), F.max_pool2d)
    case("max_pool3d", "max_pool3d", x3, (2,), dict(stride=1, padding=1, **ri), F.max_pool3d)
    nan = x2.copy()
    nan[0, 0, 1:3, 1:3] = np.nan
    nan[1, 1, 4, 5] = np.nan
    case("max_pool2d_nan", "max_pool2d", nan, (3,), dict(stride=2, padding=1, **ri),
         F.max_pool2d)
    ties = rng.integers(0, 3, size=(2, 2, 7, 9)).astype(np.float32)
    case("max_pool2d_ties", "max_pool2d", ties, (3,), dict(stride=1, **ri), F.max_pool2d)
    case("max_pool2d_channels_last", "max_pool2d", np.ascontiguousarray(
        np.moveaxis(x2, 1, -1)), (2,), dict(stride=2, layout="channels_last", **ri),
        channels_last(F.max_pool2d))
    case("max_pool2d_int64", "max_pool2d", rng.integers(-99, 99, size=(2, 2, 7, 9)), (3,),
         dict(stride=2, padding=1, ceil_mode=True), F.max_pool2d, grad=False)
    case("max_pool2d_float16", "max_pool2d", x2.astype(np.float16), (3,),
         dict(stride=2, **ri), F.max_pool2d)
    case("max_pool2d_unbatched", "max_pool2d", x2[0], (2,), dict(**ri), F.max_pool2d)
    case("min_pool1d", "min_pool1d", x1, (4,), dict(stride=3, padding=2, ceil_mode=True,
         **ri), min_pool(1))
    case("min_pool2d", "min_pool2d", x2, ((2, 3),), dict(stride=(1, 2), dilation=(2, 1),
         **ri), min_pool(2))
    case("min_pool3d", "min_pool3d", x3, (3,), dict(stride=2, padding=1, ceil_mode=True,
         **ri), min_pool(3))

    # averages: count_include_pad, divisor_override, ceil_mode
    case("avg_pool1d", "avg_pool1d", x1, (3,), dict(stride=2, padding=1, ceil_mode=True,
         count_include_pad=False), F.avg_pool1d)
    case("avg_pool2d", "avg_pool2d", x2, ((3, 2),), dict(stride=(2, 1), padding=(1, 1),
         ceil_mode=True), F.avg_pool2d)
    case("avg_pool2d_divisor", "avg_pool2d", x2.astype(np.float64), (3,),
         dict(stride=2, padding=1, divisor_override=5), F.avg_pool2d)
    case("avg_pool2d_channels_last", "avg_pool2d", np.ascontiguousarray(
        np.moveaxis(x2, 1, -1)), (3,), dict(stride=2, padding=1, count_include_pad=False,
        layout="channels_last"), channels_last(F.avg_pool2d))
    case("avg_pool3d", "avg_pool3d", x3, (2,), dict(stride=2, padding=1, ceil_mode=True,
         count_include_pad=False, divisor_override=3), F.avg_pool3d)

    # Lp on positive input, partial ceil_mode windows
    p1, p2, p3 = (tie_free(rng, s, positive=True) for s in [(2, 3, 11), (2, 2, 7, 9),
                                                             (1, 2, 5, 6, 5)])
    case("lp_pool1d", "lp_pool1d", p1, (2, 3), dict(stride=2, ceil_mode=True), F.lp_pool1d)
    case("lp_pool2d", "lp_pool2d", p2, (1.5, (2, 3)), dict(ceil_mode=True), F.lp_pool2d)
    case("lp_pool3d", "lp_pool3d", p3.astype(np.float64), (3, 2), dict(stride=1),
         F.lp_pool3d)

    # adaptive pools: output smaller and larger than the input
    case("adaptive_max_pool1d", "adaptive_max_pool1d", x1, (4,), ri, F.adaptive_max_pool1d)
    case("adaptive_max_pool2d", "adaptive_max_pool2d", x2, ((3, 13),), ri,
         F.adaptive_max_pool2d)
    case("adaptive_max_pool3d", "adaptive_max_pool3d", x3, ((2, 7, 3),), ri,
         F.adaptive_max_pool3d)
    case("adaptive_avg_pool1d", "adaptive_avg_pool1d", x1, (15,), {}, F.adaptive_avg_pool1d)
    case("adaptive_avg_pool2d", "adaptive_avg_pool2d", x2, ((4, 5),), {},
         F.adaptive_avg_pool2d)
    case("adaptive_avg_pool3d", "adaptive_avg_pool3d", x3.astype(np.float64), ((3, 4, 7),),
         {}, F.adaptive_avg_pool3d)

    # fractional: PyTorch's _random_samples are ndpool's samples
    s2 = rng.random((2, 2, 2)).astype(np.float32)
    case("fractional_max_pool2d", "fractional_max_pool2d", x2, (2,),
         dict(output_size=(4, 5), samples="@samples", **ri), F.fractional_max_pool2d,
         torch_extra={"_random_samples": torch.from_numpy(s2)}, arrays={"samples": s2})
    s3 = rng.random((1, 2, 3)).astype(np.float32)
    case("fractional_max_pool3d", "fractional_max_pool3d", x3, ((2, 2, 3),),
         dict(output_ratio=(0.5, 0.5, 0.5), samples="@samples", **ri),
         F.fractional_max_pool3d, torch_extra={"_random_samples": torch.from_numpy(s3)},
         arrays={"samples": s3})
    # max unpooling of torch's own pooled values, with and without output_size
    for rank, x, k, s, p, size in [(1, x1, 3, 2, 1, None), (2, x2, 2, 2, 0, [7, 9]),
                                   (3, x3, 3, 2, 1, [1, 2, 5, 6, 5])]:
        y, idx = getattr(F, f"max_pool{rank}d")(torch.from_numpy(x), k, s, p,
                                                return_indices=True)
        case(f"max_unpool{rank}d", f"max_unpool{rank}d", y.numpy(), ("@indices", k),
             dict(stride=s, padding=p, output_size=size), getattr(F, f"max_unpool{rank}d"),
             arrays={"indices": idx.numpy()})

    # global pools (tie-free, so torch's amax gives the gradient to one element)
    case("global_max_pool", "global_max_pool", x3, (), {},
         lambda t: torch.amax(t, dim=(2, 3, 4)))
    case("global_avg_pool", "global_avg_pool", x2, (), dict(keepdims=True),
         lambda t, keepdims: torch.mean(t, dim=(2, 3), keepdim=keepdims))
    pool_cases()
    median_cases()
    region_cases()
    softmax_cases()
    variant_cases()
    total = sum(f.stat().st_size for f in OUT.glob("*.npz"))
    print(f"wrote {len(list(OUT.glob('*.npz')))} files, {total} bytes, to {OUT}")


def pool_cases():
    """ndpool.pool over axes torch pools only after moving them last (own seed, so that
    adding these left the other files as they were)."""
    rng = np.random.default_rng(9)
    x = tie_free(rng, (5, 3, 8))

    def moved(fn, axes, *args, **kw):   # torch's op on ``axes`` moved last, then back
        def run(t):
            last = tuple(range(t.dim() - len(axes), t.dim()))
            return fn(t.movedim(axes, last), *args, **kw).movedim(last, axes)
        return run

    case("pool_max_axes", "pool", x, ("max", 3), dict(stride=2, padding=1, axes=[0, 2]),
         lambda t, *_, **__: moved(F.max_pool2d, (0, 2), 3, 2, 1)(t))
    case("pool_sum_depthwise", "pool", x, ("sum", 2), dict(stride=1, padding=1, axes=1),
         lambda t, *_, **__: moved(lambda u: 2 * F.avg_pool1d(u, 2, 1, 1), (1,))(t))


def unfolded_median(rank, kernel, stride):
    """torch.median (the lower median) over windows unfolded from ``t``, with flat
    per-plane indices (tie-free input: the median is one cell)."""
    def run(t, *_, **__):
        spatial = t.shape[2:]
        u = t
        for d in range(rank):
            u = u.unfold(2 + d, kernel[d], stride[d])
        values, tap = u.reshape(u.shape[:2 + rank] + (-1,)).median(dim=-1)
        taps = np.unravel_index(tap.numpy(), kernel)
        grid = np.meshgrid(*[np.arange(n) * s for n, s in zip(values.shape[2:], stride)],
                           indexing="ij")
        flat = np.ravel_multi_index(tuple(g + o for g, o in zip(grid, taps)), spatial)
        return values, torch.from_numpy(flat.astype(np.int64))
    return run


def median_cases():
    """median_pool* against torch.median on unfolded windows (own seed)."""
    rng = np.random.default_rng(12)
    for rank, shape, kernel, stride in [(1, (2, 3, 11), (4,), (2,)),
                                        (2, (2, 2, 7, 9), (3, 2), (1, 2)),
                                        (3, (1, 2, 5, 6, 5), (2, 3, 2), (1, 2, 2))]:
        name = f"median_pool{rank}d"
        case(name, name, tie_free(rng, shape), (kernel,), dict(stride=stride,
             return_indices=True), unfolded_median(rank, kernel, stride))


def save(name, op, x, args, kwargs, y, dy, dx, arrays):
    """A golden file from results computed outside torch (case()'s format)."""
    call_args = [({"$array": f"arg_{a[1:]}"} if isinstance(a, str) and a.startswith("@")
                  else a) for a in args]
    record = {"x": x, "y": y.astype(x.dtype), "dy": dy, "dx": dx.astype(x.dtype),
              "call": np.array(json.dumps({"op": op, "args": call_args, "kwargs": kwargs}))}
    record.update({f"arg_{k}": v for k, v in arrays.items()})
    np.savez_compressed(OUT / f"{name}.npz", **record)


def _onnx(node, inputs):
    import onnxruntime
    from onnx import helper
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, t, None)
                                            for n, t in inputs],
                              [helper.make_tensor_value_info("Y", inputs[0][1], None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)])
    return onnxruntime.InferenceSession(model.SerializeToString(),
                                        providers=["CPUExecutionProvider"])


def region_cases():
    """roi_pool / roi_align from onnxruntime's MaxRoiPool and RoiAlign (torchvision does
    not install beside torch 2.13). Their gradients from the same sessions: RoIAlign is
    linear in x, so dx[i] = <roi_align(e_i), dy>; RoIPool's gradient goes to the cell
    whose nudge moves a bin (tie-free x in eighths, nudged by 1/32, exact in float32)."""
    from onnx import TensorProto, helper
    rng = np.random.default_rng(13)
    boxes = np.array([[0, 0.5, 1.0, 5.5, 4.0], [1, -2.0, 3.0, 4.0, 9.0],
                      [0, 6.0, 6.0, 2.0, 2.0], [1, 1.0, 0.0, 12.0, 2.5]])
    x = tie_free(rng, (2, 2, 6, 7), np.float64)
    # RoIAlign, aligned (half_pixel) and not, adaptive and fixed grids
    for name, size, scale, ratio, aligned in [("roi_align", (2, 3), 0.5, -1, False),
                                              ("roi_align_aligned", (3, 2), 1.0, 2, True)]:
        node = helper.make_node(
            "RoiAlign", ["X", "rois", "batch"], ["Y"], mode="avg", output_height=size[0],
            output_width=size[1], sampling_ratio=max(ratio, 0), spatial_scale=scale,
            coordinate_transformation_mode="half_pixel" if aligned else "output_half_pixel")
        session = _onnx(node, [("X", TensorProto.DOUBLE), ("rois", TensorProto.DOUBLE),
                               ("batch", TensorProto.INT64)])
        use = boxes if not aligned else boxes[[0, 1, 3]]   # onnxruntime: no inverted boxes
        run = lambda v: session.run(None, {"X": v, "rois": np.ascontiguousarray(use[:, 1:]),
                                           "batch": use[:, 0].astype(np.int64)})[0]
        y = run(x)
        dy = np.random.default_rng(len(name)).standard_normal(y.shape)
        dx = np.array([(run(np.eye(x.size)[i].reshape(x.shape)) * dy).sum()
                       for i in range(x.size)]).reshape(x.shape)
        save(name, "roi_align", x, ("@boxes", list(size)),
             dict(spatial_scale=scale, sampling_ratio=ratio, aligned=aligned), y, dy, dx,
             {"boxes": use})
    # RoIPool in float32 (onnxruntime's MaxRoiPool has no float64 kernel)
    x32 = x.astype(np.float32)
    node = helper.make_node("MaxRoiPool", ["X", "rois"], ["Y"], pooled_shape=[3, 2],
                            spatial_scale=1.0)
    session = _onnx(node, [("X", TensorProto.FLOAT), ("rois", TensorProto.FLOAT)])
    b32 = boxes.astype(np.float32)
    run = lambda v: session.run(None, {"X": v, "rois": b32})[0]
    y = run(x32)
    dy = np.random.default_rng(8).standard_normal(y.shape).astype(np.float32)
    dx = np.zeros(x.size)
    for i in range(x.size):
        moved = run(x32 + np.float32(1 / 32) * np.eye(x.size, dtype=np.float32)[i].reshape(x.shape))
        dx[i] = ((moved != y) * dy).sum()
    save("roi_pool", "roi_pool", x32, ("@boxes", [3, 2]), {}, y, dy, dx.reshape(x.shape),
         {"boxes": b32})
def softmax_cases():
    """soft_pool and attention_pool as ratios of torch's avg_pool: the zero padding (and
    ceil_mode's overhang) adds nothing to either sum, and the divisors cancel (own seed)."""
    rng = np.random.default_rng(12)

    def weighted(rank, logits=None):
        avg = getattr(F, f"avg_pool{rank}d")

        def run(t, *args, **kw):
            scores = t if logits is None else args[0]
            geometry = args if logits is None else args[1:]
            e = torch.exp(scores)
            return avg(e * t, *geometry, **kw) / avg(e, *geometry, **kw)
        return run

    shapes = {1: (2, 3, 11), 2: (2, 2, 7, 9), 3: (1, 2, 5, 6, 5)}
    geometry = {1: (3, 2, 1, True), 2: ((3, 2), (2, 1), (1, 0), True), 3: (2, 2, 1, False)}
    for rank, shape in shapes.items():
        x = tie_free(rng, shape)
        k, st, p, ceil = geometry[rank]
        case(f"soft_pool{rank}d", f"soft_pool{rank}d", x, (k,),
             dict(stride=st, padding=p, ceil_mode=ceil), weighted(rank))
        logits = (rng.standard_normal(shape) * 2).astype(np.float32)
        case(f"attention_pool{rank}d", f"attention_pool{rank}d", x, ("@logits", k),
             dict(stride=st, padding=p), weighted(rank, logits), arrays={"logits": logits})
def binomial_blur(rank, filter_size, stride, mode, channels):
    """antialiased-cnns' BlurPool: F.pad by (k - 1) // 2 before and k // 2 after, then a
    depthwise convolution with the normalised binomial filter."""
    import math

    row = torch.tensor([math.comb(filter_size - 1, j) for j in range(filter_size)],
                       dtype=torch.float64)
    weight = row / row.sum()
    for _ in range(rank - 1):
        weight = weight[..., None] * (row / row.sum())
    weight = weight.expand((channels, 1) + (filter_size,) * rank)
    pads = [(filter_size - 1) // 2, filter_size // 2] * rank
    torch_mode = {"zeros": "constant"}.get(mode, mode)
    conv = getattr(F, f"conv{rank}d")
    return lambda t: conv(F.pad(t, pads, mode=torch_mode), weight.to(t.dtype),
                          stride=stride, groups=channels)


def variant_cases():
    """The variants of issue 12 from their closed forms in torch (own seed, so that adding
    these left the other files as they were); stochastic pooling in evaluation mode."""
    rng = np.random.default_rng(12)
    x1, x2, x3 = (tie_free(rng, s) for s in [(2, 3, 11), (2, 2, 7, 9), (1, 2, 5, 6, 5)])
    p2, p3 = (tie_free(rng, s, positive=True) for s in [(2, 2, 7, 9), (1, 2, 5, 6, 5)])
    ignore = lambda fn: lambda t, *_, **__: fn(t)

    def stochastic_mean(rank, kernel, stride):
        avg = getattr(F, f"avg_pool{rank}d")
        return lambda t: avg(t * t, kernel, stride) / avg(t, kernel, stride)

    case("stochastic_pool2d", "stochastic_pool2d", p2, (3,), dict(stride=2, training=False),
         ignore(stochastic_mean(2, 3, 2)))
    case("stochastic_pool3d", "stochastic_pool3d", p3, (2,), dict(training=False),
         ignore(stochastic_mean(3, 2, 2)))
    case("blur_pool1d", "blur_pool1d", x1, (4, 2, "reflect"), {},
         ignore(binomial_blur(1, 4, 2, "reflect", 3)))
    case("blur_pool2d", "blur_pool2d", x2.astype(np.float64), (5,),
         dict(stride=3, padding_mode="zeros"), ignore(binomial_blur(2, 5, 3, "zeros", 2)))
    case("blur_pool3d", "blur_pool3d", x3, (3, (1, 2, 2), "replicate"), {},
         ignore(binomial_blur(3, 3, (1, 2, 2), "replicate", 2)))
    case("max_blur_pool2d", "max_blur_pool2d", x2, (2, 3, 2, "circular"), {},
         ignore(lambda t: binomial_blur(2, 3, 2, "circular", 2)(F.max_pool2d(t, 2, 1))))
    case("global_gem_pool", "global_gem_pool", p3.astype(np.float64), (),
         dict(p=2.5, eps=1e-6),
         ignore(lambda t: t.clamp(min=1e-6).pow(2.5).mean(dim=(2, 3, 4)).pow(1 / 2.5)))
    case("spatial_pyramid_pool", "spatial_pyramid_pool", x2, ((1, 2, 3), "max"), {},
         ignore(lambda t: torch.cat([F.adaptive_max_pool2d(t, n).flatten(1)
                                     for n in (1, 2, 3)], 1)))


if __name__ == "__main__":
    main()
