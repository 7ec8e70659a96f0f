"""Median pooling and RoI pooling against their oracles.

median_pool*: a plain-Python window-by-window oracle (stable sort, lower median, first
cell holding it), torch.median on unfolded windows, kornia's median_blur where it
applies. roi_pool / roi_align: onnxruntime's MaxRoiPool and RoiAlign (its RoiAlign is
torchvision's C++ kernel), finite differences and the adjoint identity for the
backward passes (both ops are linear in x between ties), and the error messages.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import ndpool
from oracle import tie_free

torch = pytest.importorskip("torch")


# ------------------------------------------------------------------ median: oracles
def windows_of(size, kernel, stride, pad, ceil_mode):
    """Per dim, the in-bounds cells of each window (PyTorch's output-size rule)."""
    span = size + 2 * pad - kernel + (stride - 1 if ceil_mode else 0)
    out = span // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return [[c for c in range(o * stride - pad, o * stride - pad + kernel) if 0 <= c < size]
            for o in range(out)]


def median_oracle(x, kernel, stride, pad, ceil_mode):
    """Window by window in Python: the lower median of the in-bounds cells, the cell a
    stable sort puts at the median's place; a NaN wins (the first)."""
    rank = len(kernel)
    spatial = x.shape[-rank:]
    planes = x.reshape((-1,) + spatial)
    per_dim = [windows_of(*args) for args in zip(spatial, kernel, stride, pad,
                                                 [ceil_mode] * rank)]
    out = tuple(len(w) for w in per_dim)
    y = np.empty((len(planes),) + out, x.dtype)
    idx = np.empty((len(planes),) + out, np.int64)
    for p, plane in enumerate(planes):
        for o in itertools.product(*[range(n) for n in out]):
            cells = list(itertools.product(*[per_dim[d][o[d]] for d in range(rank)]))
            values = [plane[c] for c in cells]
            nan = [i for i, v in enumerate(values) if v != v]
            if nan:
                pick = nan[0]
            else:
                order = sorted(range(len(values)), key=lambda i: values[i])   # stable
                pick = order[(len(values) - 1) // 2]
            y[(p,) + o] = values[pick]
            idx[(p,) + o] = np.ravel_multi_index(cells[pick], spatial)
    lead = x.shape[:-rank]
    return y.reshape(lead + out), idx.reshape(lead + out)


def random_median_case(rng, rank):
    kernel = tuple(int(k) for k in rng.integers(1, 5, rank))
    stride = tuple(int(s) for s in rng.integers(1, 4, rank))
    pad = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
    size = tuple(int(k + rng.integers(0, 6)) for k in kernel)
    return size, kernel, stride, pad, bool(rng.random() < 0.5)


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("values", ["distinct", "ties", "nan"])
def test_median_matches_the_python_oracle(backend, rank, values):
    rng = np.random.default_rng(rank * 10 + len(values))
    op = getattr(ndpool, f"median_pool{rank}d")
    for _ in range(25):
        size, kernel, stride, pad, ceil_mode = random_median_case(rng, rank)
        shape = (2, 2) + size
        if values == "distinct":
            x = tie_free(rng, shape)
        else:   # few distinct values: many ties, where the index rule matters
            x = rng.integers(0, 3, shape).astype(np.float64)
            if values == "nan":
                x[rng.random(shape) < 0.1] = np.nan
        with ndpool.use_backend(backend):
            y, idx = op(x, kernel, stride, pad, ceil_mode, return_indices=True)
        want_y, want_idx = median_oracle(x, kernel, stride, pad, ceil_mode)
        np.testing.assert_array_equal(y, want_y)
        np.testing.assert_array_equal(idx, want_idx)


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int16, np.uint8])
def test_median_compiled_equals_reference(rank, dtype):
    if ndpool.backends.default_backend() != "compiled":
        pytest.skip("the compiled core is not built")
    rng = np.random.default_rng(rank)
    op = getattr(ndpool, f"median_pool{rank}d")
    for _ in range(10):
        size, kernel, stride, pad, ceil_mode = random_median_case(rng, rank)
        x = rng.integers(0, 50, (3,) + size).astype(dtype)   # unbatched (C, *spatial)
        results = []
        for backend in ("compiled", "reference"):
            with ndpool.use_backend(backend):
                results.append(op(x, kernel, stride, pad, ceil_mode, return_indices=True))
        for got, want in zip(*results):
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)


def unfolded_median(t, rank, kernel, stride):
    """torch.median (the lower median) over windows unfolded from ``t`` (no padding)."""
    for d in range(rank):
        t = t.unfold(2 + d, kernel[d], stride[d])
    windows = t.reshape(t.shape[:2 + rank] + (-1,))
    return windows.median(dim=-1)


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("ties", [False, True])
def test_median_matches_torch_median_on_unfolded_windows(backend, rank, ties):
    """Values, indices and gradient, the unfolded index turned into ndpool's flat one;
    with ties too (windows of values 0..2): torch.median on the CPU picks, among equal
    cells, the one a stable sort puts in the middle, as ndpool does."""
    rng = np.random.default_rng(40 + rank + 10 * ties)
    op = getattr(ndpool, f"median_pool{rank}d")
    for _ in range(10):
        kernel = tuple(int(k) for k in rng.integers(1, 5, rank))
        stride = tuple(int(s) for s in rng.integers(1, 3, rank))
        size = tuple(int(k + rng.integers(0, 5)) for k in kernel)
        x = rng.integers(0, 3, (2, 3) + size).astype(np.float64) if ties else tie_free(
            rng, (2, 3) + size)
        t = torch.from_numpy(x.copy()).requires_grad_(True)
        values, where = unfolded_median(t, rank, kernel, stride)
        dy = rng.standard_normal(values.shape)
        values.backward(torch.from_numpy(dy))
        with ndpool.use_backend(backend):
            (y, idx), pullback = ndpool.vjp(op, x, kernel, stride, return_indices=True)
            dx = pullback(dy)
        np.testing.assert_array_equal(y, values.detach().numpy())
        # the unfolded tap offset -> the cell's flat per-plane index
        tap = np.unravel_index(where.numpy(), kernel)
        grid = np.meshgrid(*[np.arange(n) * s for n, s in zip(y.shape[2:], stride)],
                           indexing="ij")
        cell = tuple(g + o for g, o in zip(grid, tap))
        np.testing.assert_array_equal(idx, np.ravel_multi_index(cell, size))
        # overlapping windows may add a cell's shares in another order
        np.testing.assert_allclose(dx, t.grad.numpy(), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("kernel", [33, 40, 64])
def test_median_of_large_windows_with_ties(backend, kernel):
    """Windows past 32 cells take the core's nth_element path (smaller ones count ranks)."""
    rng = np.random.default_rng(kernel)
    x = rng.integers(0, 5, (2, 3, 130)).astype(np.float32)
    with ndpool.use_backend(backend):
        y, idx = ndpool.median_pool1d(x, kernel, 7, kernel // 2, True, return_indices=True)
    want_y, want_idx = median_oracle(x, (kernel,), (7,), (kernel // 2,), True)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(idx, want_idx)


def test_median_of_dask_arrays_equals_numpy():
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(8)
    x = rng.integers(0, 9, (2, 3, 17, 19)).astype(np.float64)
    lazy = da.from_array(x, chunks=(1, 2, 6, 7))
    for args in [(3, 1, 1), (2,), (3, 2, 1, True)]:
        (y, idx), pullback = ndpool.vjp(ndpool.median_pool2d, lazy, *args, return_indices=True)
        (y0, idx0), pullback0 = ndpool.vjp(ndpool.median_pool2d, x, *args, return_indices=True)
        np.testing.assert_array_equal(y.compute(), y0)
        np.testing.assert_array_equal(idx.compute(), idx0)
        dy = rng.standard_normal(y0.shape)
        np.testing.assert_allclose(pullback(da.from_array(dy, chunks=3)).compute(),
                                   pullback0(dy), rtol=1e-12)


def test_median_takes_max_poolings_padding_forms(backend):
    rng = np.random.default_rng(9)
    x = rng.integers(0, 4, (1, 2, 7, 8)).astype(np.float32)
    with ndpool.use_backend(backend):
        same = ndpool.median_pool2d(x, 3, 1, "same", return_indices=True)
        pairs = ndpool.median_pool2d(x, 3, 1, ((1, 1), (1, 1)), return_indices=True)
        lower = ndpool.median_pool2d(x, 2, 1, "SAME_LOWER")
    for a, b in zip(same, pairs):
        np.testing.assert_array_equal(a, b)
    # "same_lower": the odd pad cell before, as ONNX
    np.testing.assert_array_equal(lower, ndpool.median_pool2d(x, 2, 1, ((1, 0), (1, 0))))
    np.testing.assert_array_equal(lower[..., 0, 0], x[..., 0, 0])   # a one-cell window


def test_median_lower_median_of_an_even_count_and_padding_never_counts(backend):
    x = np.array([[[4.0, 1.0, 3.0, 2.0]]])
    with ndpool.use_backend(backend):
        np.testing.assert_array_equal(ndpool.median_pool1d(x, 4), [[[2.0]]])
        # window 0 holds the pad and 4: the median of the one cell 4, not of (pad, 4)
        y, idx = ndpool.median_pool1d(x, 2, 2, 1, return_indices=True)
    np.testing.assert_array_equal(y, [[[4.0, 1.0, 2.0]]])
    np.testing.assert_array_equal(idx, [[[0, 1, 3]]])


def test_median_ties_go_to_the_cell_a_stable_sort_puts_in_the_middle(backend):
    x = np.array([[[5.0, 5.0, 5.0, 1.0, 5.0]]])   # stably sorted: 1, 5, [5], 5, 5
    with ndpool.use_backend(backend):
        (y, idx), pullback = ndpool.vjp(ndpool.median_pool1d, x, 5, return_indices=True)
        dx = pullback(np.ones((1, 1, 1)))
    assert y[0, 0, 0] == 5.0 and idx[0, 0, 0] == 1
    np.testing.assert_array_equal(dx, [[[0.0, 1.0, 0, 0, 0]]])


def test_median_matches_kornia_median_blur_inside_the_image():
    kornia = pytest.importorskip("kornia")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 9, 11)).astype(np.float32)
    for kernel in ((3, 3), (5, 3), (1, 5)):
        blurred = kornia.filters.median_blur(torch.from_numpy(x), kernel).numpy()
        (kh, kw) = kernel
        inside = blurred[:, :, kh // 2: x.shape[2] - kh // 2, kw // 2: x.shape[3] - kw // 2]
        np.testing.assert_array_equal(ndpool.median_pool2d(x, kernel, 1), inside)


def test_median_gradient_accumulates_where_windows_overlap(backend):
    rng = np.random.default_rng(6)
    x = tie_free(rng, (1, 2, 7, 7))
    dy = rng.standard_normal((1, 2, 7, 7))
    with ndpool.use_backend(backend):
        (y, idx), pullback = ndpool.vjp(ndpool.median_pool2d, x, 3, 1, 1, return_indices=True)
        dx = pullback(dy)
    want = np.zeros((2, 49))
    for c in range(2):
        np.add.at(want[c], idx[0, c].ravel(), dy[0, c].ravel())
    np.testing.assert_allclose(dx.reshape(2, 49), want, rtol=1e-12)


def test_median_layers_and_input_unchanged():
    rng = np.random.default_rng(7)
    x = tie_free(rng, (2, 3, 6, 6))
    before = x.copy()
    x.flags.writeable = False
    layer = ndpool.nn.MedianPool2d(3, stride=2, padding=1)
    y = layer(x)
    np.testing.assert_array_equal(y, ndpool.median_pool2d(x, 3, 2, 1))
    dx = layer.backward(np.ones_like(y))
    assert dx.shape == x.shape and dx.sum() == y.size
    np.testing.assert_array_equal(x, before)
    for rank in (1, 3):
        layer = getattr(ndpool.nn, f"MedianPool{rank}d")(2, return_indices=True)
        y, idx = layer(tie_free(rng, (1, 2) + (4,) * rank))
        assert y.shape == (1, 2) + (2,) * rank and idx.dtype == np.int64


# --------------------------------------------------------------------- RoI: oracles
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402


def _session(node, inputs):
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, t, None)
                                            for n, t in inputs],
                              [helper.make_tensor_value_info("Y", inputs[0][1], None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)])
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def ort_roi_align(x, boxes, size, scale, sampling_ratio, aligned):
    kind = TensorProto.FLOAT if x.dtype == np.float32 else TensorProto.DOUBLE
    node = helper.make_node(
        "RoiAlign", ["X", "rois", "batch"], ["Y"], mode="avg", output_height=size[0],
        output_width=size[1], sampling_ratio=max(sampling_ratio, 0), spatial_scale=scale,
        coordinate_transformation_mode="half_pixel" if aligned else "output_half_pixel")
    session = _session(node, [("X", kind), ("rois", kind), ("batch", TensorProto.INT64)])
    return session.run(None, {"X": x, "rois": np.ascontiguousarray(boxes[:, 1:]),
                              "batch": boxes[:, 0].astype(np.int64)})[0]


def ort_max_roi_pool(x, boxes, size, scale):
    node = helper.make_node("MaxRoiPool", ["X", "rois"], ["Y"], pooled_shape=list(size),
                            spatial_scale=scale)
    session = _session(node, [("X", TensorProto.FLOAT), ("rois", TensorProto.FLOAT)])
    return session.run(None, {"X": x, "rois": boxes})[0]


def random_boxes(rng, images, height, width, count, scale, dtype, *, well_formed=True):
    """(K, 5) boxes, some reaching past the map (by up to 3 cells) and, unless
    ``well_formed``, some with x2 < x1 or y2 < y1."""
    corners = np.stack([rng.uniform(-3, width + 3, count), rng.uniform(-3, height + 3, count),
                        rng.uniform(-3, width + 3, count), rng.uniform(-3, height + 3, count)],
                       axis=1) / scale
    if well_formed:
        corners = np.concatenate([np.minimum(corners[:, :2], corners[:, 2:]),
                                  np.maximum(corners[:, :2], corners[:, 2:])], axis=1)
    return np.concatenate([rng.integers(0, images, (count, 1)), corners], axis=1).astype(dtype)


def random_roi_case(rng, dtype, well_formed=True):
    n, c, h, w = (int(v) for v in (rng.integers(1, 3), rng.integers(1, 4),
                                   rng.integers(1, 13), rng.integers(1, 13)))
    scale = float(rng.choice([1.0, 0.5, 0.25, 1 / 16]))
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    boxes = random_boxes(rng, n, h, w, int(rng.integers(1, 6)), scale, dtype,
                         well_formed=well_formed)
    size = tuple(int(v) for v in rng.integers(1, 5, 2))
    return x, boxes, size, scale


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("aligned", [False, True])
def test_roi_align_matches_onnxruntime(backend, dtype, aligned):
    rng = np.random.default_rng(int(aligned) + (dtype == np.float64) * 2)
    exact = backend == "compiled"   # the compiled core computes in torchvision's order
    for _ in range(40):
        # onnxruntime refuses inverted boxes with aligned=True (negative grid sizes)
        x, boxes, size, scale = random_roi_case(rng, dtype, well_formed=aligned or rng.random() < 0.5)
        ratio = int(rng.choice([-1, 0, 1, 2, 3]))
        with ndpool.use_backend(backend):
            y = ndpool.roi_align(x, boxes, size, scale, ratio, aligned)
        want = ort_roi_align(x, boxes, size, scale, ratio, aligned)
        assert y.shape == want.shape and y.dtype == dtype
        if exact:
            np.testing.assert_array_equal(y, want)
        else:
            np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5 if dtype == np.float32 else 1e-12)


def test_roi_align_of_boxes_with_many_samples_matches_onnxruntime(backend):
    """Past 2**16 samples per box the core combines the separable tables per channel
    instead of keeping a table of every sample: the same numbers."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 2, 20, 24)).astype(np.float32)
    boxes = np.array([[0, -1.5, 0.5, 26.0, 19.0], [0, 3.0, 2.0, 9.5, 30.0]], np.float32)
    for size, ratio, aligned in [((16, 16), 17, False), ((9, 8), -1, True), ((3, 2), 160, True)]:
        with ndpool.use_backend(backend):
            y = ndpool.roi_align(x, boxes if ratio != -1 else boxes * 40, size, 1.0 if ratio != -1 else 1 / 40,
                                 ratio, aligned)
        want = ort_roi_align(x, boxes if ratio != -1 else boxes * 40, size,
                             1.0 if ratio != -1 else 1 / 40, ratio, aligned)
        np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-6)
        if backend == "compiled":
            np.testing.assert_array_equal(y, want)


def test_roi_pool_matches_onnxruntime_max_roi_pool(backend):
    rng = np.random.default_rng(11)
    for _ in range(60):
        x, boxes, size, scale = random_roi_case(rng, np.float32, well_formed=rng.random() < 0.7)
        with ndpool.use_backend(backend):
            y = ndpool.roi_pool(x, boxes, size, scale)
        np.testing.assert_array_equal(y, ort_max_roi_pool(x, boxes, size, scale))


@pytest.mark.parametrize("op", ["roi_pool", "roi_align"])
def test_roi_compiled_equals_reference_forward_and_backward(op):
    if ndpool.backends.default_backend() != "compiled":
        pytest.skip("the compiled core is not built")
    rng = np.random.default_rng(12)
    for dtype in (np.float16, np.float32, np.float64):
        for _ in range(15):
            x, boxes, size, scale = random_roi_case(rng, dtype, well_formed=rng.random() < 0.5)
            x = tie_free(rng, x.shape, dtype) if op == "roi_pool" else x
            extra = (int(rng.choice([-1, 2])), bool(rng.random() < 0.5)) if op == "roi_align" else ()
            results = []
            for backend in ("compiled", "reference"):
                with ndpool.use_backend(backend):
                    y, pullback = ndpool.vjp(getattr(ndpool, op), x, boxes, size, scale, *extra)
                    dy = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
                    results.append((y, pullback(dy)))
            (y, dx), (y_ref, dx_ref) = results
            tol = {np.float16: 2e-3, np.float32: 1e-5, np.float64: 1e-12}[dtype]
            assert y.dtype == dx.dtype == dtype and dx.shape == x.shape
            np.testing.assert_allclose(y.astype(np.float64), y_ref, rtol=tol, atol=tol)
            np.testing.assert_allclose(dx.astype(np.float64), dx_ref, rtol=tol, atol=tol * 4)


def test_roi_align_backward_is_the_adjoint_and_matches_finite_differences(backend):
    """RoIAlign is linear in x: <roi_align(x), dy> = <x, pullback(dy)> exactly up to
    rounding, and central differences are exact for it (away from nothing: the kinks
    of bilinear sampling are in the box coordinates, not in x)."""
    rng = np.random.default_rng(13)
    for _ in range(10):
        x, boxes, size, scale = random_roi_case(rng, np.float64)
        ratio, aligned = int(rng.choice([-1, 1, 2])), bool(rng.random() < 0.5)
        with ndpool.use_backend(backend):
            y, pullback = ndpool.vjp(ndpool.roi_align, x, boxes, size, scale, ratio, aligned)
            dy = rng.standard_normal(y.shape)
            dx = pullback(dy)
            assert np.isclose((y * dy).sum(), (x * dx).sum(), rtol=1e-10, atol=1e-10)
            for flat in rng.choice(x.size, min(5, x.size), replace=False):
                e = np.zeros(x.size)
                e[flat] = 1e-3
                e = e.reshape(x.shape)
                up = ndpool.roi_align(x + e, boxes, size, scale, ratio, aligned)
                down = ndpool.roi_align(x - e, boxes, size, scale, ratio, aligned)
                numeric = ((up - down) * dy).sum() / 2e-3
                assert np.isclose(numeric, dx.ravel()[flat], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("aligned", [False, True])
def test_roi_align_backward_matches_onnxruntime_probed(backend, aligned):
    """RoIAlign is linear in x, so onnxruntime gives its gradient too: dx[i] is
    <RoiAlign(e_i), dy> for the unit arrays e_i."""
    rng = np.random.default_rng(19 + aligned)
    x = rng.standard_normal((2, 2, 5, 6))
    boxes = random_boxes(rng, 2, 5, 6, 4, 0.5, np.float64)
    dy = rng.standard_normal((4, 2, 2, 3))
    with ndpool.use_backend(backend):
        _, pullback = ndpool.vjp(ndpool.roi_align, x, boxes, (2, 3), 0.5, -1, aligned)
        dx = pullback(dy)
    probed = [(ort_roi_align(np.eye(x.size)[i].reshape(x.shape), boxes, (2, 3), 0.5, -1,
                             aligned) * dy).sum() for i in range(x.size)]
    np.testing.assert_allclose(dx, np.reshape(probed, x.shape), rtol=1e-12, atol=1e-14)


def test_roi_pool_backward_sends_each_bin_to_its_maximum(backend):
    """Tie-free x: the gradient of each bin goes to the cell holding its max (found by
    search), and finite differences agree."""
    rng = np.random.default_rng(14)
    for _ in range(10):
        x, boxes, size, scale = random_roi_case(rng, np.float64)
        x = tie_free(rng, x.shape, positive=True)   # no zeros: y == 0 only for an empty bin
        with ndpool.use_backend(backend):
            y, pullback = ndpool.vjp(ndpool.roi_pool, x, boxes, size, scale)
            dy = rng.standard_normal(y.shape)
            dx = pullback(dy)
            want = np.zeros_like(x)
            for k, c, ph, pw in zip(*np.nonzero(np.ones(y.shape, bool))):
                n = int(boxes[k, 0])
                hits = np.argwhere(x[n, c] == y[k, c, ph, pw])
                if len(hits) and y[k, c, ph, pw] != 0:
                    want[n, c][tuple(hits[0])] += dy[k, c, ph, pw]
            np.testing.assert_allclose(dx, want, rtol=1e-12, atol=1e-12)
            flat = int(rng.integers(x.size))
            e = np.zeros(x.size)
            e[flat] = 1e-7
            e = e.reshape(x.shape)
            numeric = ((ndpool.roi_pool(x + e, boxes, size, scale)
                        - ndpool.roi_pool(x - e, boxes, size, scale)) * dy).sum() / 2e-7
            assert np.isclose(numeric, dx.ravel()[flat], rtol=1e-5, atol=1e-6)


def test_roi_boxes_as_a_list_per_image_equal_the_table(backend):
    rng = np.random.default_rng(15)
    x = rng.standard_normal((3, 2, 8, 8))
    per_image = [rng.uniform(0, 8, (k, 4)) for k in (2, 0, 3)]
    table = np.concatenate([np.concatenate([np.full((len(b), 1), i), b], axis=1)
                            for i, b in enumerate(per_image)])
    with ndpool.use_backend(backend):
        for op in (ndpool.roi_pool, ndpool.roi_align):
            np.testing.assert_array_equal(op(x, per_image, 3), op(x, table, 3))
            assert op(x, [], 3).shape == (0, 2, 3, 3)


def test_roi_edge_rules(backend):
    """A sample more than a cell outside the map counts 0; one within a cell reads the
    clamped edge; an empty RoIPool bin is 0; a malformed box is 1x1 unless aligned."""
    x = np.arange(1.0, 17.0).reshape(1, 1, 4, 4)
    with ndpool.use_backend(backend):
        far = ndpool.roi_align(x, np.array([[0, -9.0, -9.0, -7.0, -7.0]]), 1, sampling_ratio=1)
        near = ndpool.roi_align(x, np.array([[0, -1.5, -1.5, -0.5, -0.5]]), 1, sampling_ratio=1)
        empty = ndpool.roi_pool(x, np.array([[0, 9.0, 9.0, 12.0, 12.0]]), 2)
        inverted = ndpool.roi_align(x, np.array([[0, 2.0, 2.0, 1.0, 1.0]]), 1, sampling_ratio=1)
        flat = ndpool.roi_align(x, np.array([[0, 2.0, 2.0, 1.0, 1.0]]), 1, sampling_ratio=1,
                                aligned=True)
    assert far[0, 0, 0, 0] == 0 and near[0, 0, 0, 0] == x[0, 0, 0, 0]
    np.testing.assert_array_equal(empty, np.zeros((1, 1, 2, 2)))
    assert inverted[0, 0, 0, 0] == x[0, 0, 2, 2] * 0.25 + x[0, 0, 2, 3] * 0.25 + \
        x[0, 0, 3, 2] * 0.25 + x[0, 0, 3, 3] * 0.25   # the 1x1 box from (2, 2), sample (2.5, 2.5)
    assert flat.shape == (1, 1, 1, 1)


def test_empty_batches_channels_and_boxes(backend):
    with ndpool.use_backend(backend):
        assert ndpool.median_pool2d(np.zeros((0, 2, 5, 5)), 3).shape == (0, 2, 1, 1)
        y, idx = ndpool.median_pool1d(np.zeros((2, 0, 5)), 3, return_indices=True)
        assert y.shape == idx.shape == (2, 0, 1)
        for op, x, boxes in ((ndpool.roi_align, np.zeros((0, 3, 4, 4)), np.zeros((0, 5))),
                             (ndpool.roi_pool, np.zeros((2, 0, 4, 4)), np.array([[1, 0, 0, 2, 2.0]])),
                             (ndpool.roi_align, np.zeros((2, 0, 4, 4)), np.array([[1, 0, 0, 2, 2.0]]))):
            y, pullback = ndpool.vjp(op, x, boxes, 2)
            assert y.shape == (len(boxes), x.shape[1], 2, 2)
            dx = pullback(y)
            assert dx.shape == x.shape and not dx.any()


@pytest.mark.parametrize("threads", [1, 3])
def test_results_do_not_depend_on_the_thread_count(threads):
    """The RoI backward passes sum each plane's boxes in box order on one thread, so
    any thread count gives the same bits."""
    rng = np.random.default_rng(17)
    x = rng.standard_normal((2, 8, 16, 16)).astype(np.float32)
    boxes = random_boxes(rng, 2, 16, 16, 40, 1.0, np.float32)
    dy = rng.standard_normal((40, 8, 3, 3)).astype(np.float32)

    def run():
        a, pa = ndpool.vjp(ndpool.roi_align, x, boxes, 3, 1.0, -1, True)
        b, pb = ndpool.vjp(ndpool.roi_pool, x, boxes, 3)
        m, pm = ndpool.vjp(ndpool.median_pool2d, x, 3, 1, 1)
        return a, pa(dy), b, pb(dy), m, pm(m)

    before = ndpool.get_num_threads()
    try:
        ndpool.set_num_threads(2)
        want = run()
        ndpool.set_num_threads(threads)
        got = run()
    finally:
        ndpool.set_num_threads(before)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_concurrent_calls_from_python_threads_equal_serial_ones():
    """The kernels release the GIL and share the core's pool (a call that finds it busy
    runs on its own thread): calls from several Python threads give the serial results."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(18)
    x = rng.standard_normal((2, 16, 32, 32)).astype(np.float32)
    boxes = random_boxes(rng, 2, 32, 32, 30, 1.0, np.float32)
    dy = rng.standard_normal((30, 16, 4, 4)).astype(np.float32)
    jobs = [lambda: ndpool.median_pool2d(x, 3, 1, 1, return_indices=True)[1],
            lambda: ndpool.median_pool3d(x[None], (1, 5, 5), 2),
            lambda: ndpool.roi_pool(x, boxes, 4),
            lambda: ndpool.roi_align(x, boxes, 4, 1.0, -1, True),
            lambda: ndpool.vjp(ndpool.roi_align, x, boxes, 4, 1.0, 2)[1](dy),
            lambda: ndpool.vjp(ndpool.roi_pool, x, boxes, 4)[1](dy)]
    serial = [job() for job in jobs]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: jobs[i % len(jobs)](), range(4 * len(jobs))))
    for i, got in enumerate(results):
        np.testing.assert_array_equal(got, serial[i % len(jobs)])


def test_roi_align_every_ratio_below_one_is_adaptive(backend):
    rng = np.random.default_rng(20)
    x = rng.standard_normal((1, 2, 9, 9))
    boxes = random_boxes(rng, 1, 9, 9, 3, 1.0, np.float64)
    with ndpool.use_backend(backend):
        want = ndpool.roi_align(x, boxes, 2, 1.0, -1)
        for ratio in (0, -7, -2**40, np.int8(-1)):
            np.testing.assert_array_equal(ndpool.roi_align(x, boxes, 2, 1.0, ratio), want)


def test_roi_layers_and_inputs_unchanged():
    rng = np.random.default_rng(16)
    x = rng.standard_normal((2, 3, 8, 8))
    boxes = random_boxes(rng, 2, 8, 8, 4, 1.0, np.float64)
    saved = x.copy(), boxes.copy()
    x.flags.writeable = boxes.flags.writeable = False
    for layer, op in ((ndpool.nn.RoIPool(2, 1.0), ndpool.roi_pool),
                      (ndpool.nn.RoIAlign((2, 3), 1.0, 2, aligned=True), None)):
        y = layer(x, boxes)
        want = op(x, boxes, 2, 1.0) if op else ndpool.roi_align(x, boxes, (2, 3), 1.0, 2, True)
        np.testing.assert_array_equal(y, want)
        dx = layer.backward(np.ones_like(y))
        assert dx.shape == x.shape
    np.testing.assert_array_equal(x, saved[0])
    np.testing.assert_array_equal(boxes, saved[1])
    assert "RoIAlign(output_size=(2, 3), spatial_scale=1.0, sampling_ratio=2" in repr(layer)


# ---------------------------------------------------------------------------- errors
X = np.zeros((2, 3, 8, 8))
BOX = np.array([[0, 1.0, 1.0, 4.0, 4.0]])
E, T = ValueError, TypeError

BAD = [
    ("boxes_shape", lambda: ndpool.roi_align(X, np.zeros((2, 4)), 2), E,
     r"roi_align: boxes must have shape \(K, 5\) .*got shape \(2, 4\)"),
    ("boxes_1d", lambda: ndpool.roi_pool(X, np.zeros(5), 2), E, r"roi_pool: boxes must have shape \(K, 5\)"),
    ("boxes_list_shape", lambda: ndpool.roi_align(X, [np.zeros((2, 5))], 2), E,
     r"roi_align: boxes\[0\] must have shape \(Ki, 4\)"),
    ("boxes_none", lambda: ndpool.roi_pool(X, None, 2), T, r"roi_pool: boxes must be an array"),
    ("boxes_dtype", lambda: ndpool.roi_align(X, BOX.astype(complex), 2), T, r"roi_align: boxes has dtype complex128"),
    ("boxes_bool", lambda: ndpool.roi_pool(X, BOX.astype(bool), 2), T, r"roi_pool: boxes has dtype bool"),
    ("boxes_nan", lambda: ndpool.roi_align(X, BOX + np.nan, 2), E, r"roi_align: boxes must be finite"),
    ("batch_out_of_range", lambda: ndpool.roi_align(X, np.array([[2, 0, 0, 1, 1.0]]), 2), E,
     r"roi_align: a box's image index 2 is out of range for x with 2 images"),
    ("batch_negative", lambda: ndpool.roi_pool(X, np.array([[-1, 0, 0, 1, 1.0]]), 2), E,
     r"roi_pool: a box's image index -1 is out of range"),
    ("batch_fraction", lambda: ndpool.roi_pool(X, np.array([[0.5, 0, 0, 1, 1.0]]), 2), E,
     r"roi_pool: a box's image index 0.5 is not an integer"),
    ("list_too_long", lambda: ndpool.roi_align(X, [np.zeros((0, 4))] * 2 + [np.ones((1, 4))], 2), E,
     r"roi_align: a box's image index 2 is out of range .*boxes\[i\] is image i"),
    ("output_size_zero", lambda: ndpool.roi_align(X, BOX, 0), E, r"roi_align: output_size=0 must be at least 1"),
    ("output_size_negative", lambda: ndpool.roi_pool(X, BOX, (2, -1)), E, r"roi_pool: output_size=\(2, -1\) must be at least 1"),
    ("output_size_length", lambda: ndpool.roi_pool(X, BOX, (2, 2, 2)), E, r"roi_pool: output_size=\(2, 2, 2\) must have 2 entries"),
    ("output_size_float", lambda: ndpool.roi_align(X, BOX, 2.5), T, r"roi_align: output_size=2\.5 must be an int"),
    ("scale_zero", lambda: ndpool.roi_align(X, BOX, 2, 0.0), E, r"roi_align: spatial_scale=0\.0 must be a positive"),
    ("scale_negative", lambda: ndpool.roi_pool(X, BOX, 2, -1.0), E, r"roi_pool: spatial_scale=-1\.0 must be a positive"),
    ("scale_huge_int", lambda: ndpool.roi_pool(X, BOX, 2, 10**400), E, r"roi_pool: spatial_scale=1000.* must be a positive finite"),
    ("scale_string", lambda: ndpool.roi_pool(X, BOX, 2, "1"), T, r"roi_pool: spatial_scale='1' must be a number"),
    ("sampling_float", lambda: ndpool.roi_align(X, BOX, 2, 1.0, 1.5), T, r"roi_align: sampling_ratio=1\.5 must be an int"),
    ("sampling_huge", lambda: ndpool.roi_align(X, BOX, 2, 1.0, 2**20), E, r"roi_align: box 0 takes .* samples per channel"),
    ("aligned_int", lambda: ndpool.roi_align(X, BOX, 2, aligned=1), T, r"roi_align: aligned=1 must be True or False"),
    ("x_dims", lambda: ndpool.roi_align(X[0], BOX, 2), E, r"roi_align: x must have 4 dims \(N, C, H, W\), got shape \(3, 8, 8\)"),
    ("x_int", lambda: ndpool.roi_pool(X.astype(np.int32), BOX, 2), T, r"roi_pool: x has dtype int32"),
    ("x_empty", lambda: ndpool.roi_pool(np.zeros((1, 1, 0, 4)), BOX, 2), E, r"roi_pool: x has an empty spatial dim"),
    ("huge_box", lambda: ndpool.roi_pool(X, np.array([[0, 0, 0, 1e30, 1.0]]), 2), E,
     r"roi_pool: box coordinates times spatial_scale=1\.0 must lie within"),
    ("dy_shape", lambda: ndpool.vjp(ndpool.roi_align, X, BOX, 2)[1](np.ones((1, 3, 3, 3))), E,
     r"roi_align pullback: dy has shape \(1, 3, 3, 3\) but the output has shape \(1, 3, 2, 2\)"),
    ("median_kernel", lambda: ndpool.median_pool2d(X, 0), E, r"median_pool2d: kernel_size=0 must be at least 1"),
    ("median_padding", lambda: ndpool.median_pool2d(X, 2, padding=2), E, r"median_pool2d: padding=2 must be at most half"),
    ("median_dims", lambda: ndpool.median_pool3d(X[0], 2), E, r"median_pool3d: x must have 5 dims"),
    ("median_dtype", lambda: ndpool.median_pool1d(X[0].astype(complex), 2), T, r"median_pool1d: x has dtype complex128"),
    ("median_flag", lambda: ndpool.median_pool2d(X, 2, return_indices=1), T, r"median_pool2d: return_indices=1 must be True or False"),
    ("median_too_large", lambda: ndpool.median_pool2d(X, 9), E, r"median_pool2d: kernel_size=\(9, 9\) .*does not fit"),
]


@pytest.mark.parametrize("name,call,kind,message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_refused_clearly(name, call, kind, message):
    with pytest.raises(kind, match=message):
        call()
