"""Median and RoI pooling against what a user would otherwise run: PyTorch's median of
unfolded windows, and onnxruntime's RoiAlign / MaxRoiPool (torchvision does not install
beside the CPU torch here; onnxruntime's RoiAlign is its C++ kernel). Best of several
runs, same thread count for all; the load average says whether other work shared the
CPU. Run: ``python benchmarks/median_roi.py [--threads 1 2]``.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import onnxruntime
import torch
from onnx import TensorProto, helper

import ndpool


def best(fn, repeats=7):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def session(node, inputs, threads):
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, t, None)
                                            for n, t in inputs],
                              [helper.make_tensor_value_info("Y", inputs[0][1], None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    return onnxruntime.InferenceSession(model.SerializeToString(), options,
                                        providers=["CPUExecutionProvider"])


def torch_median(t, k, s):
    u = t.unfold(2, k, s).unfold(3, k, s)
    return u.reshape(u.shape[:4] + (-1,)).median(dim=-1)


def boxes_for(rng, images, height, width, count, scale):
    x = np.sort(rng.uniform(0, width, (count, 2)), axis=1) / scale
    y = np.sort(rng.uniform(0, height, (count, 2)), axis=1) / scale
    return np.concatenate([rng.integers(0, images, (count, 1)), x[:, :1], y[:, :1], x[:, 1:],
                           y[:, 1:]], axis=1).astype(np.float32)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"CPU: {platform.processor() or platform.machine()}, os.cpu_count() = {os.cpu_count()}; "
          f"load average at the start {os.getloadavg()[0]:.2f}")
    print("| op | input | threads | ndpool ms | other ms | other | ndpool speed-up |")
    print("|---|---|---:|---:|---:|---|---:|")
    x = rng.standard_normal((4, 32, 64, 64)).astype(np.float32)
    fm = rng.standard_normal((2, 256, 50, 68)).astype(np.float32)
    boxes = boxes_for(rng, 2, 50, 68, 128, 1 / 16)
    for threads in args.threads:
        ndpool.set_num_threads(threads)
        torch.set_num_threads(threads)
        t = torch.from_numpy(x)
        for k, s in ((3, 1), (5, 1), (2, 2), (3, 2)):
            ours = best(lambda: ndpool.median_pool2d(x, k, s))
            other = best(lambda: torch_median(t, k, s))
            print(f"| median_pool2d k{k} s{s} | 4×32×64×64 | {threads} | {ours:.1f} | "
                  f"{other:.1f} | torch unfold + median | {other / ours:.2f} |")
        for ratio, aligned in ((2, True), (-1, False)):
            node = helper.make_node(
                "RoiAlign", ["X", "rois", "batch"], ["Y"], mode="avg", output_height=7,
                output_width=7, sampling_ratio=max(ratio, 0), spatial_scale=1 / 16,
                coordinate_transformation_mode="half_pixel" if aligned else "output_half_pixel")
            run = session(node, [("X", TensorProto.FLOAT), ("rois", TensorProto.FLOAT),
                                 ("batch", TensorProto.INT64)], threads)
            feed = {"X": fm, "rois": np.ascontiguousarray(boxes[:, 1:]),
                    "batch": boxes[:, 0].astype(np.int64)}
            ours = best(lambda: ndpool.roi_align(fm, boxes, 7, 1 / 16, ratio, aligned))
            other = best(lambda: run.run(None, feed))
            print(f"| roi_align 7×7 ratio {ratio} aligned={aligned}, 128 boxes | 2×256×50×68 | "
                  f"{threads} | {ours:.1f} | {other:.1f} | onnxruntime RoiAlign | {other / ours:.2f} |")
        node = helper.make_node("MaxRoiPool", ["X", "rois"], ["Y"], pooled_shape=[7, 7],
                                spatial_scale=1 / 16)
        run = session(node, [("X", TensorProto.FLOAT), ("rois", TensorProto.FLOAT)], threads)
        ours = best(lambda: ndpool.roi_pool(fm, boxes, 7, 1 / 16))
        other = best(lambda: run.run(None, {"X": fm, "rois": boxes}))
        print(f"| roi_pool 7×7, 128 boxes | 2×256×50×68 | {threads} | {ours:.1f} | {other:.1f} | "
              f"onnxruntime MaxRoiPool | {other / ours:.2f} |")
        for name, op, extra in (("roi_align", ndpool.roi_align, (1 / 16, 2, True)),
                                ("roi_pool", ndpool.roi_pool, (1 / 16,))):
            y, pullback = ndpool.vjp(op, fm, boxes, 7, *extra)
            dy = np.ones_like(y)
            print(f"| {name} backward | 2×256×50×68 | {threads} | {best(lambda: pullback(dy)):.1f} "
                  f"| | (no oracle backward) | |")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
