"""Every framework's pooling vocabulary, each form against an independent reference.

Explicit (before, after) padding as TensorFlow, ONNX and ``torch.nn.functional.pad``
write it, ONNX's SAME_LOWER and the upper-case words, 1-tuples and ``stride=()``,
dilated averages and Lp, padded Lp, channels-last for every op, empty fractional
outputs and ONNX's column-major indices. The references: the padded loop of
``naive.padded_pool``, PyTorch on explicitly padded input (``F.pad`` with -inf for a
max, window sums by convolution for the averages), and ONNX Runtime (a test extra).
Gradient checks use tie-free inputs.
"""
import math

import numpy as np
import pytest

import ndpool
from naive import padded_pool, same_pads
from oracle import assert_close, check, tie_free

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _op(kind, rank):
    return getattr(ndpool, f"{kind}_pool{rank}d")


def _call(kind, rank, x, kernel, stride, padding, dilation=1, ceil_mode=False,
          count_include_pad=True, **extra):
    """``vjp`` of the ndpool op, its arguments spelt by keyword."""
    if kind == "lp":
        return ndpool.vjp(_op("lp", rank), x, 2, kernel, stride, ceil_mode, padding=padding,
                          dilation=dilation, **extra)
    kw = dict(stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode, **extra)
    if kind == "avg":
        kw["count_include_pad"] = count_include_pad
    else:
        kw["return_indices"] = True
    return ndpool.vjp(_op(kind, rank), x, kernel, **kw)


def _loop_check(backend, kind, x, kernel, stride, padding, pads, dilation=None,
                ceil_mode=False, count_include_pad=True, seed=0, **extra):
    """The ndpool op with ``padding`` (any form) against the loop with ``pads``: values,
    indices and the gradient of a random ``dy``. Returns False when the loop finds a
    window wholly in the padding (ndpool must then refuse the call).

    The divisor rule under test: an average counts explicit padding when
    ``count_include_pad``, a word's padding never (TensorFlow); Lp always counts it."""
    rank = x.ndim - 2
    dilation = dilation or (1,) * rank
    counted = True if kind == "lp" else count_include_pad and not isinstance(padding, str)
    rng = np.random.default_rng(seed)
    try:
        y0, _, _ = padded_pool(x[:1, :1], kind, kernel, stride, dilation, pads, ceil_mode,
                               counted)
    except ValueError:
        with ndpool.use_backend(backend), pytest.raises(ValueError, match="padding"):
            _call(kind, rank, x, kernel, stride, padding, dilation, ceil_mode,
                  count_include_pad, **extra)
        return False
    dy = rng.standard_normal(x.shape[:2] + y0.shape[2:])
    y_ref, idx_ref, dx_ref = padded_pool(x, kind, kernel, stride, dilation, pads, ceil_mode,
                                         counted, dy=dy)
    with ndpool.use_backend(backend):
        result, pullback = _call(kind, rank, x, kernel, stride, padding, dilation, ceil_mode,
                                 count_include_pad, **extra)
        dx = pullback(dy)
    y = result[0] if kind in ("max", "min") else result
    exact = kind in ("max", "min")
    assert_close(y, y_ref, x.dtype, exact=exact, what="forward values")
    if exact:
        np.testing.assert_array_equal(result[1], idx_ref, err_msg="indices")
    assert_close(dx, dx_ref, x.dtype, exact=False, scale=4, what="input gradient")
    return True


def _pairs_case(rng, rank, *, dilation=True, ceil=True):
    """Random kernel, stride, dilation, (before, after) pads up to the window's extent
    minus one (beyond PyTorch's half kernel), ceil_mode and a spatial size."""
    kernel = tuple(int(v) for v in rng.integers(1, 5 if rank < 3 else 4, size=rank))
    stride = tuple(int(v) for v in rng.integers(1, 4, size=rank))
    dil = tuple(int(v) for v in rng.integers(1, 3, size=rank)) if dilation else (1,) * rank
    extents = [d * (k - 1) + 1 for k, d in zip(kernel, dil)]
    pads = tuple((int(rng.integers(0, e)), int(rng.integers(0, e))) for e in extents)
    spatial = tuple(int(rng.integers(1, 9 if rank < 3 else 5)) + max(e - lo - hi, 0)
                    for e, (lo, hi) in zip(extents, pads))
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 3))) + spatial
    return shape, kernel, stride, dil, pads, bool(ceil and rng.random() < 0.5)


# ------------------------------------------------------------ forms of explicit padding
X2 = tie_free(np.random.default_rng(0), (2, 3, 7, 6))
PAIRS = ((1, 2), (2, 0))           # H: 1 before, 2 after; W: 2 before, 0 after

FORMS = [
    ("pairs", PAIRS, "channels_first", PAIRS),
    ("pairs_list", [[1, 2], [2, 0]], "channels_first", PAIRS),
    ("pairs_array", np.array(PAIRS), "channels_first", PAIRS),
    ("tensorflow_nchw", [[0, 0], [0, 0], [1, 2], [2, 0]], "channels_first", PAIRS),
    ("tensorflow_nhwc", [[0, 0], [1, 2], [2, 0], [0, 0]], "channels_last", PAIRS),
    ("onnx_pads", tuple(zip((1, 2), (2, 0))), "channels_first", PAIRS),   # pads=[1,2,2,0]
    ("torch_pad_order", (2, 0, 1, 2), "channels_first", PAIRS),           # left right top bottom
    ("one_pair_for_all", ((2, 1),), "channels_first", ((2, 1), (2, 1))),
    ("one_tuple", (1,), "channels_first", ((1, 1), (1, 1))),
    ("pytorch_ints", (1, 0), "channels_first", ((1, 1), (0, 0))),
]


@pytest.mark.parametrize("padding, layout, pads", [f[1:] for f in FORMS],
                         ids=[f[0] for f in FORMS])
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_padding_forms_mean_their_pairs(backend, kind, padding, layout, pads):
    x = np.moveaxis(X2, 1, -1) if layout == "channels_last" else X2
    y_ref, idx_ref, _ = padded_pool(X2, kind, (3, 3), (2, 1), (1, 1), pads)
    with ndpool.use_backend(backend):
        op = _op(kind, 2)
        if kind == "max":
            y, idx = op(x, 3, (2, 1), padding, return_indices=True, layout=layout)
        else:
            y = op(x, 3, (2, 1), padding, layout=layout)
    if layout == "channels_last":
        y = np.moveaxis(y, -1, 1)
    assert_close(y, y_ref, X2.dtype, exact=kind == "max")
    if kind == "max":
        idx = np.moveaxis(idx, -1, 1) if layout == "channels_last" else idx
        np.testing.assert_array_equal(idx, idx_ref)


def test_torch_pad_order_reads_the_last_dim_first(backend):
    x = tie_free(np.random.default_rng(1), (1, 2, 4, 5, 6))
    # (left, right, top, bottom, front, back): W (1, 0), H (0, 2), D (2, 1)
    with ndpool.use_backend(backend):
        y = ndpool.max_pool3d(x, 3, 1, (1, 0, 0, 2, 2, 1))
    assert y.shape == (1, 2, 4 + 3 - 2, 5 + 2 - 2, 6 + 1 - 2)
    ref = F.max_pool3d(F.pad(torch.from_numpy(x), (1, 0, 0, 2, 2, 1), value=-math.inf), 3, 1)
    np.testing.assert_array_equal(y, ref.numpy())
    x1 = x[0, :, 0]                                              # (N, C, W) = (2, 5, 6)
    with ndpool.use_backend(backend):
        z = ndpool.max_pool1d(x1, 3, 1, (2, 0))                  # rank 1: (before, after)
    assert z.shape == (2, 5, 6)
    np.testing.assert_array_equal(z, padded_pool(x1, "max", (3,), (1,), (1,), ((2, 0),))[0])


# ------------------------------------- explicit pads against PyTorch on padded input
def _flat(pads):
    """(before, after) pairs as torch.nn.functional.pad's flat list, last dim first."""
    return [v for pair in reversed(pads) for v in pair]


def _window_sum(t, kernel, stride, dilation):
    """Each window's sum, as a convolution with a kernel of ones (PyTorch has no dilated
    average pooling)."""
    rank = len(kernel)
    conv = getattr(F, f"conv{rank}d")
    planes = t.reshape((-1, 1) + tuple(t.shape[2:]))
    ones = torch.ones((1, 1) + tuple(kernel), dtype=t.dtype)
    out = conv(planes, ones, stride=stride, dilation=dilation)
    return out.reshape(tuple(t.shape[:2]) + tuple(out.shape[2:]))


def torch_padded(kind, pads, kernel, stride, dilation, count_include_pad=True):
    """PyTorch on explicitly padded input: max as ``max_pool`` of ``F.pad(x, -inf)`` (its
    indices moved back to the unpadded plane), averages and Lp as window sums."""
    rank, flat = len(kernel), _flat(pads)

    def extreme(t):
        sign = 1 if kind == "max" else -1
        padded = F.pad(sign * t, flat, value=-math.inf)
        y, idx = getattr(F, f"max_pool{rank}d")(padded, kernel, stride, 0, dilation,
                                               return_indices=True)
        spatial = tuple(t.shape[2:])
        where = np.unravel_index(idx.numpy(), tuple(padded.shape[2:]))
        where = tuple(w - lo for w, (lo, _) in zip(where, pads))
        return sign * y, torch.from_numpy(np.ravel_multi_index(where, spatial))

    def average(t):
        mask = torch.ones_like(t)
        counted = F.pad(mask, flat, value=1.0) if count_include_pad else F.pad(mask, flat)
        return (_window_sum(F.pad(t, flat), kernel, stride, dilation)
                / _window_sum(counted, kernel, stride, dilation))

    def lp(t):
        return _window_sum(F.pad(t ** 2, flat), kernel, stride, dilation) ** 0.5

    return {"max": extreme, "min": extreme, "avg": average, "lp": lp}[kind]


def _torch_case(seed, rank, kind):
    rng = np.random.default_rng([seed, rank, len(kind), 11])
    while True:
        shape, kernel, stride, dil, pads, _ = _pairs_case(rng, rank, ceil=False)
        try:   # no window wholly in the padding (refusals are tested against the loop)
            padded_pool(np.zeros((1, 1) + shape[2:]), "max", kernel, stride, dil, pads)
            return rng, shape, kernel, stride, dil, pads
        except ValueError:
            continue


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("kind", ["max", "min", "avg", "lp"])
def test_explicit_pads_match_torch_on_padded_input(backend, kind, rank, seed):
    rng, shape, kernel, stride, dil, pads = _torch_case(seed, rank, kind)
    x = tie_free(rng, shape, positive=kind == "lp")
    count_include_pad = bool(rng.random() < 0.5)
    channels_last = bool(rng.random() < 0.3)
    if channels_last:
        x = np.moveaxis(x, 1, -1)
    layout = dict(layout="channels_last") if channels_last else {}
    torch_op = torch_padded(kind, pads, kernel, stride, dil, count_include_pad)
    if kind == "lp":
        args, kw = (2, kernel, stride), dict(padding=pads, dilation=dil, **layout)
    elif kind == "avg":
        args = (kernel,)
        kw = dict(stride=stride, padding=pads, dilation=dil,
                  count_include_pad=count_include_pad, **layout)
    else:
        args = (kernel,)
        kw = dict(stride=stride, padding=pads, dilation=dil, return_indices=True, **layout)
    check(_op(kind, rank), torch_op, x, args, kw, backend=backend,
          exact=kind in ("max", "min"), seed=seed)


# ------------------------------- ceil_mode, dilation and the words against the loop
@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("kind", ["max", "min", "avg", "lp"])
def test_pairs_with_ceil_mode_and_dilation_match_the_loop(backend, kind, rank, seed):
    rng = np.random.default_rng([seed, rank, len(kind), 5])
    shape, kernel, stride, dil, pads, ceil_mode = _pairs_case(rng, rank)
    x = tie_free(rng, shape, positive=kind == "lp")
    # every other case spells the pads in torch.nn.functional.pad's flat order
    padding = pads if seed % 2 else tuple(_flat(pads))
    _loop_check(backend, kind, x, kernel, stride, padding, pads, dil, ceil_mode,
                count_include_pad=bool(rng.random() < 0.5), seed=seed)


WORDS = ["SAME", "same_lower", "SAME_LOWER", "Same_Upper", "VALID"]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("kind", ["max", "min", "avg", "lp"])
def test_padding_words_in_any_case_match_the_loop(backend, kind, rank, seed):
    rng = np.random.default_rng([seed, rank, len(kind), 3])
    shape, kernel, stride, dil, _, _ = _pairs_case(rng, rank)
    word = WORDS[(seed + rank) % len(WORDS)]
    lower = word.lower() == "same_lower"
    if word.lower() == "valid":
        pads = ((0, 0),) * rank
        shape = shape[:2] + tuple(max(n, d * (k - 1) + 1)
                                  for n, k, d in zip(shape[2:], kernel, dil))
    else:
        pads = tuple(same_pads(n, k, s, d, lower)
                     for n, k, s, d in zip(shape[2:], kernel, stride, dil))
    x = tie_free(rng, shape, positive=kind == "lp")
    # count_include_pad=True is given, and ignored: a word's padding never counts
    checked = _loop_check(backend, kind, x, kernel, stride, word, pads, dil,
                          count_include_pad=True, seed=seed)
    if checked and kind in ("max", "avg"):
        out = tuple(math.ceil(n / s) for n, s in zip(shape[2:], stride))
        if word.lower() != "valid":
            with ndpool.use_backend(backend):
                assert _op(kind, rank)(x, kernel, stride, word, dilation=dil).shape[2:] == out


def test_same_lower_puts_the_odd_cell_first(backend):
    """ONNX's own example numbers (MaxPool, in=6, k=4, s=1: 3 pad cells, 2 before)."""
    x = np.arange(6.0).reshape(1, 1, 6)
    with ndpool.use_backend(backend):
        lower = ndpool.max_pool1d(x, 4, 1, "SAME_LOWER")
        upper = ndpool.max_pool1d(x, 4, 1, "SAME_UPPER")
        avg = ndpool.avg_pool1d(x, 4, 1, "same_lower")
    np.testing.assert_array_equal(lower[0, 0], [1, 2, 3, 4, 5, 5])
    np.testing.assert_array_equal(upper[0, 0], [2, 3, 4, 5, 5, 5])
    np.testing.assert_allclose(avg[0, 0], [1 / 2, 3 / 3, 6 / 4, 10 / 4, 14 / 4, 12 / 3])


# ---------------------------------------------------------- 1-tuples and stride=()
ONE_TUPLES = [
    ("max_pool2d", dict(kernel_size=(3,), stride=(), padding=(1,), dilation=(2,))),
    ("max_pool3d", dict(kernel_size=(2,), stride=(), padding=(1,))),
    ("max_pool1d", dict(kernel_size=(3,), stride=(), padding=(1,))),
    ("avg_pool2d", dict(kernel_size=(2,), stride=(), padding=(1,))),
    ("avg_pool3d", dict(kernel_size=(2,), stride=[], padding=(1,))),
]


@pytest.mark.parametrize("name, kw", ONE_TUPLES, ids=[c[0] for c in ONE_TUPLES])
def test_one_tuples_and_empty_stride_as_pytorch(backend, name, kw):
    rank = int(name[-2])
    x = tie_free(np.random.default_rng(rank), (2, 3) + (7,) * rank)
    if name.startswith("max"):
        kw = dict(kw, return_indices=True)
    torch_op = lambda t: getattr(F, name)(t, **kw)
    check(getattr(ndpool, name), torch_op, x, (), kw, backend=backend,
          exact=name.startswith("max"))


def test_one_tuples_elsewhere_mean_one_int_for_all(backend):
    x = tie_free(np.random.default_rng(2), (2, 3, 8, 8))
    with ndpool.use_backend(backend):
        pairs = [
            (ndpool.lp_pool2d(x + 100, 2, (2,), stride=()), ndpool.lp_pool2d(x + 100, 2, 2)),
            (ndpool.adaptive_avg_pool2d(x, (3,)), ndpool.adaptive_avg_pool2d(x, 3)),
            (ndpool.fractional_max_pool2d(x, (2,), output_size=(5,), rng=1),
             ndpool.fractional_max_pool2d(x, 2, output_size=5, rng=1)),
        ]
        y, idx = ndpool.max_pool2d(x, 2, return_indices=True)
        pairs.append((ndpool.max_unpool2d(y, idx, (2,), stride=()),
                      ndpool.max_unpool2d(y, idx, 2)))
    for a, b in pairs:
        assert a.shape == b.shape
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------- channels_last everywhere
def _cl(x):
    return np.moveaxis(x, 1, -1)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_channels_last_adaptive_matches_torch(backend, rank):
    rng = np.random.default_rng(rank)
    x = _cl(tie_free(rng, (2, 3) + (7,) * rank))
    out = (3, 2, 4)[:rank]
    check(getattr(ndpool, f"adaptive_max_pool{rank}d"),
          lambda t: getattr(F, f"adaptive_max_pool{rank}d")(t, out, return_indices=True),
          x, (out,), dict(return_indices=True, layout="channels_last"), backend=backend,
          exact=True)
    check(getattr(ndpool, f"adaptive_avg_pool{rank}d"),
          lambda t: getattr(F, f"adaptive_avg_pool{rank}d")(t, out),
          x, (out,), dict(layout="channels_last"), backend=backend)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_channels_last_lp_matches_torch(backend, rank):
    x = _cl(tie_free(np.random.default_rng(rank), (2, 3) + (6,) * rank, positive=True))
    check(_op("lp", rank), lambda t: getattr(F, f"lp_pool{rank}d")(t, 3, 2, ceil_mode=True),
          x, (3, 2), dict(ceil_mode=True, layout="channels_last"), backend=backend)


@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize("batched", [True, False])
def test_channels_last_fractional_matches_torch(backend, rank, batched):
    rng = np.random.default_rng(rank)
    x = tie_free(rng, (2, 3) + (9,) * rank)
    u = rng.random((2, 3, rank))
    if not batched:
        x, u = x[0], u[0]
    name = f"fractional_max_pool{rank}d"
    torch_op = lambda t: getattr(F, name)(t, 2, output_size=4, return_indices=True,
                                          _random_samples=torch.tensor(u).reshape(-1, 3, rank))
    check(getattr(ndpool, name), torch_op, np.moveaxis(x, -rank - 1, -1), (2,),
          dict(output_size=4, samples=u, return_indices=True, layout="channels_last"),
          backend=backend, exact=True)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_channels_last_unpool_matches_torch(backend, rank):
    x = tie_free(np.random.default_rng(rank), (2, 3) + (5,) * rank)
    y, idx = _op("max", rank)(x, 2, return_indices=True)
    out = (5,) * rank
    torch_op = lambda t: getattr(F, f"max_unpool{rank}d")(t, torch.from_numpy(idx), 2,
                                                          output_size=out)
    z, _ = check(getattr(ndpool, f"max_unpool{rank}d"), torch_op, _cl(y), (_cl(idx), 2),
                 dict(output_size=(2,) + out + (3,), layout="channels_last"),
                 backend=backend, exact=True)
    assert z.shape == (2,) + out + (3,) and z.flags.c_contiguous


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_channels_last_global_matches_numpy(backend, kind, keepdims):
    x = tie_free(np.random.default_rng(4), (2, 5, 4, 3, 6))         # N, D, H, W, C
    op = getattr(ndpool, f"global_{kind}_pool")
    reduce = np.max if kind == "max" else np.mean
    with ndpool.use_backend(backend):
        plain = op(x, keepdims, layout="channels_last")
        y, pullback = ndpool.vjp(op, x, keepdims=keepdims, layout="channels_last")
        dy = np.random.default_rng(5).standard_normal(y.shape)
        dx = pullback(dy)
    expected = reduce(x, axis=(1, 2, 3), keepdims=keepdims)
    assert y.shape == expected.shape == ((2, 1, 1, 1, 6) if keepdims else (2, 6))
    assert_close(y, expected, x.dtype, exact=kind == "max")
    np.testing.assert_array_equal(plain, y)
    t = torch.from_numpy(x).requires_grad_()
    ty = t.amax(dim=(1, 2, 3), keepdim=keepdims) if kind == "max" else t.mean(
        dim=(1, 2, 3), keepdim=keepdims)
    ty.backward(torch.from_numpy(dy))
    assert_close(dx, t.grad.numpy(), x.dtype, exact=False)


# ------------------------------------------------------ empty fractional outputs
@pytest.mark.parametrize("rank, size, ratio", [
    (2, (0, 3), None), (2, (0, 0), None), (3, (2, 0, 2), None), (2, None, (0.1, 0.5))])
def test_fractional_output_size_zero_is_empty_as_in_torch(backend, rank, size, ratio):
    x = tie_free(np.random.default_rng(3), (2, 3) + (7,) * rank)
    u = np.random.default_rng(4).random((2, 3, rank))
    name = f"fractional_max_pool{rank}d"
    kw = dict(output_size=size, output_ratio=ratio, return_indices=True)
    torch_op = lambda t: getattr(F, name)(t, 2, _random_samples=torch.tensor(u), **kw)
    y, dx = check(getattr(ndpool, name), torch_op, x, (2,), dict(kw, samples=u),
                  backend=backend, exact=True)
    assert y.size == 0 and y.ndim == rank + 2
    np.testing.assert_array_equal(dx, np.zeros_like(x))


def test_fractional_output_size_zero_with_a_kernel_larger_than_the_input(backend):
    """out + kernel - 1 <= in still holds with out = 0, so a kernel of 2 fits a 1-cell
    dim (PyTorch's fractional_max_pool2d agrees); both layouts, with a zero gradient."""
    x = np.ones((2, 3, 1, 4))
    expected = F.fractional_max_pool2d(torch.from_numpy(x), (2, 1), output_size=(0, 2),
                                       _random_samples=torch.zeros(2, 3, 2, dtype=torch.float64))
    with ndpool.use_backend(backend):
        for layout, xin in (("channels_first", x), ("channels_last", _cl(x))):
            (y, idx), pullback = ndpool.vjp(ndpool.fractional_max_pool2d, xin, (2, 1),
                                            output_size=(0, 2), return_indices=True, rng=0,
                                            layout=layout)
            first = y if layout == "channels_first" else np.moveaxis(y, -1, 1)
            assert first.shape == tuple(expected.shape) == (2, 3, 0, 2)
            assert idx.shape == y.shape and idx.dtype == np.int64
            dx = pullback(np.ones(y.shape))
            assert dx.shape == xin.shape and not dx.any()


# ----------------------------------------------------- storage_order=1 (ONNX's)
def _column_major(idx, spatial):
    """Row-major flat indices written out column-major, by hand: first dim fastest."""
    position, rest = [], idx
    for n in reversed(spatial):
        position.insert(0, rest % n)
        rest = rest // n
    flat, scale = 0, 1
    for p, n in zip(position, spatial):
        flat, scale = flat + p * scale, scale * n
    return flat


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("channels_last", [False, True])
def test_storage_order_one_gives_column_major_indices(backend, rank, channels_last):
    rng = np.random.default_rng(rank)
    x = tie_free(rng, (2, 3) + (5, 6, 7)[:rank])
    spatial = x.shape[2:]
    layout = "channels_last" if channels_last else "channels_first"
    xin = _cl(x) if channels_last else x
    t = torch.from_numpy(x)
    ty, tidx = getattr(F, f"max_pool{rank}d")(t, 3, 2, 1, return_indices=True)
    with ndpool.use_backend(backend):
        (y, idx), pullback = ndpool.vjp(_op("max", rank), xin, 3, 2, 1, return_indices=True,
                                        storage_order=1, layout=layout)
        _, row_pullback = ndpool.vjp(_op("max", rank), xin, 3, 2, 1, layout=layout)
        dy = rng.standard_normal(y.shape)
        dx, dx_row = pullback(dy), row_pullback(dy)
    if channels_last:
        y, idx = np.moveaxis(y, -1, 1), np.moveaxis(idx, -1, 1)
    np.testing.assert_array_equal(y, ty.numpy())
    np.testing.assert_array_equal(idx, _column_major(tidx.numpy(), spatial))
    assert idx.dtype == np.int64
    np.testing.assert_array_equal(dx, dx_row)     # the gradient does not depend on it


# --------------------------------------------------------- layers take the new words
def test_layers_take_the_new_arguments(backend):
    x = tie_free(np.random.default_rng(8), (2, 6, 7, 3), positive=True)   # N, H, W, C
    layers = [
        (ndpool.nn.LPPool2d(2, 3, 1, padding=((1, 2), (0, 1)), dilation=2,
                            layout="channels_last"),
         lambda a: ndpool.lp_pool2d(a, 2, 3, 1, padding=((1, 2), (0, 1)), dilation=2,
                                    layout="channels_last")),
        (ndpool.nn.AvgPool2d(3, 2, "SAME_LOWER", dilation=(1, 2), layout="channels_last"),
         lambda a: ndpool.avg_pool2d(a, 3, 2, "same_lower", dilation=(1, 2),
                                     layout="channels_last")),
        (ndpool.nn.MaxPool2d(2, return_indices=True, storage_order=1, layout="channels_last"),
         lambda a: ndpool.max_pool2d(a, 2, return_indices=True, storage_order=1,
                                     layout="channels_last")),
        (ndpool.nn.GlobalAvgPool(layout="channels_last"),
         lambda a: ndpool.global_avg_pool(a, layout="channels_last")),
        (ndpool.nn.AdaptiveMaxPool2d(3, layout="channels_last"),
         lambda a: ndpool.adaptive_max_pool2d(a, 3, layout="channels_last")),
    ]
    with ndpool.use_backend(backend):
        for layer, call in layers:
            y, expected = layer(x), call(x)
            for a, b in zip(*(v if isinstance(v, tuple) else (v,) for v in (y, expected))):
                np.testing.assert_array_equal(a, b)
            dy = np.ones_like(y[0] if isinstance(y, tuple) else y)
            dx = layer.backward(dy)
            assert dx.shape == x.shape and np.isfinite(dx).all() and dx.any()


# ------------------------------------------------------- ONNX Runtime's own results
def _onnx_pool(op_type, x, with_indices=False, **attributes):
    """Run one ONNX pooling node (opset 22) on ``x`` in ONNX Runtime."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    helper, types = onnx.helper, onnx.TensorProto
    outputs = [helper.make_tensor_value_info("y", types.FLOAT, None)]
    if with_indices:
        outputs.append(helper.make_tensor_value_info("i", types.INT64, None))
    node = helper.make_node(op_type, ["x"], [o.name for o in outputs], **attributes)
    graph = helper.make_graph([node], "pool", [helper.make_tensor_value_info(
        "x", types.FLOAT, None)], outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])
    model.ir_version = 10
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


def _onnx_padding(attributes, rank):
    """ONNX's pads (all befores, then all afters) or auto_pad, as ndpool's padding."""
    if "auto_pad" in attributes:
        return attributes["auto_pad"]
    pads = attributes.get("pads", [0] * 2 * rank)
    return tuple(zip(pads[:rank], pads[rank:]))


ONNX_CASES = [   # (op_type, x shape, attributes)
    ("MaxPool", (2, 3, 7, 8), dict(kernel_shape=[3, 3], strides=[2, 1], pads=[1, 0, 2, 1])),
    ("MaxPool", (2, 3, 7, 8), dict(kernel_shape=[4, 3], strides=[1, 2], auto_pad="SAME_LOWER")),
    ("MaxPool", (1, 2, 7, 5), dict(kernel_shape=[2, 3], strides=[2, 2], auto_pad="SAME_UPPER")),
    ("MaxPool", (1, 2, 7, 5), dict(kernel_shape=[3, 2], strides=[2, 2], auto_pad="VALID")),
    ("MaxPool", (1, 2, 6, 7, 5), dict(kernel_shape=[3, 3, 3], strides=[2, 2, 2], ceil_mode=1,
                                      pads=[2, 1, 0, 1, 0, 2], dilations=[1, 2, 1])),
    ("MaxPool", (2, 2, 9), dict(kernel_shape=[3], strides=[2], pads=[2, 1], ceil_mode=1)),
    ("MaxPool", (2, 3, 7, 6), dict(kernel_shape=[3, 2], strides=[2, 1], pads=[1, 1, 2, 0],
                                   storage_order=1)),
    ("MaxPool", (1, 2, 5, 6, 7), dict(kernel_shape=[2, 3, 2], pads=[1, 0, 1, 0, 2, 1],
                                      storage_order=1)),
    ("AveragePool", (2, 3, 7, 8), dict(kernel_shape=[3, 3], strides=[2, 1],
                                       pads=[1, 0, 2, 2], count_include_pad=1)),
    ("AveragePool", (2, 3, 7, 8), dict(kernel_shape=[3, 3], strides=[2, 1],
                                       pads=[1, 0, 2, 2], count_include_pad=0)),
    ("AveragePool", (2, 2, 9, 8), dict(kernel_shape=[3, 2], dilations=[2, 3],
                                       pads=[2, 1, 1, 0], count_include_pad=1)),
    ("AveragePool", (1, 2, 6), dict(kernel_shape=[3], strides=[2], pads=[1, 1], ceil_mode=1,
                                    count_include_pad=1)),
    ("AveragePool", (2, 2, 7, 5), dict(kernel_shape=[4, 3], strides=[1, 2],
                                       auto_pad="SAME_LOWER", count_include_pad=0)),
    ("LpPool", (2, 3, 7, 8), dict(kernel_shape=[3, 2], strides=[2, 1], pads=[2, 1, 1, 1], p=2)),
    ("LpPool", (2, 2, 8, 9), dict(kernel_shape=[2, 3], dilations=[3, 2], pads=[1, 2, 0, 1],
                                  p=3)),
    ("LpPool", (1, 2, 7, 6, 5), dict(kernel_shape=[2, 3, 2], strides=[1, 2, 2],
                                     auto_pad="SAME_UPPER", p=2)),
]


@pytest.mark.parametrize("op_type, shape, attributes", ONNX_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(ONNX_CASES)])
def test_onnx_runtime_gives_the_same(backend, op_type, shape, attributes):
    rank = len(shape) - 2
    rng = np.random.default_rng(len(shape) + sum(attributes["kernel_shape"]))
    x = tie_free(rng, shape, np.float32, positive=op_type == "LpPool")
    a = attributes
    kw = dict(stride=tuple(a.get("strides", [1] * rank)), padding=_onnx_padding(a, rank),
              dilation=tuple(a.get("dilations", [1] * rank)), ceil_mode=bool(a.get("ceil_mode")))
    kernel = tuple(a["kernel_shape"])
    with ndpool.use_backend(backend):
        if op_type == "MaxPool":
            y, idx = _op("max", rank)(x, kernel, return_indices=True,
                                      storage_order=a.get("storage_order", 0), **kw)
        elif op_type == "AveragePool":
            y = _op("avg", rank)(x, kernel, count_include_pad=bool(a["count_include_pad"]), **kw)
        else:
            stride, padding, dilation = kw["stride"], kw["padding"], kw["dilation"]
            y = _op("lp", rank)(x, a["p"], kernel, stride, padding=padding, dilation=dilation)
    expected = _onnx_pool(op_type, x, op_type == "MaxPool", **attributes)
    assert_close(y, expected[0], np.float32, exact=op_type == "MaxPool")
    if op_type == "MaxPool":   # ONNX numbers planes too: plane * cells + the flat index
        cells = math.prod(shape[2:])
        planes = np.arange(shape[0] * shape[1]).reshape(shape[:2] + (1,) * rank)
        np.testing.assert_array_equal(idx, expected[1] - planes * cells)


def test_onnx_counts_a_same_words_padding_where_tensorflow_does_not(backend):
    """AveragePool with auto_pad=SAME_UPPER and count_include_pad=1 counts the padding;
    TensorFlow's "SAME" (and ndpool's words) never do. The explicit pairs give ONNX's."""
    x = np.ones((1, 1, 5), np.float32)
    onnx_y = _onnx_pool("AveragePool", x, kernel_shape=[3], auto_pad="SAME_UPPER",
                        count_include_pad=1)[0]
    with ndpool.use_backend(backend):
        word = ndpool.avg_pool1d(x, 3, 1, "SAME_UPPER", count_include_pad=True)
        pairs = ndpool.avg_pool1d(x, 3, 1, ((1, 1),), count_include_pad=True)
    np.testing.assert_array_equal(word[0, 0], np.ones(5))
    np.testing.assert_allclose(onnx_y[0, 0], [2 / 3, 1, 1, 1, 2 / 3], rtol=1e-6)
    np.testing.assert_allclose(pairs, onnx_y, rtol=1e-6)


def test_onnx_and_torch_disagree_on_lp_of_negatives_and_partial_windows(backend):
    """ndpool's Lp is PyTorch's: ``x ** p`` keeps signs and a ceil_mode partial window
    is scaled to the kernel; ONNX's LpPool takes |x| and sums the partial window."""
    x = np.array([[[-3.0, 1.0, 2.0, 2.0, 1.0]]], np.float32)
    onnx_y = _onnx_pool("LpPool", x, kernel_shape=[2], strides=[2], p=1, ceil_mode=1)[0]
    with ndpool.use_backend(backend):
        y = ndpool.lp_pool1d(x, 1, 2, ceil_mode=True)
    torch_y = F.lp_pool1d(torch.from_numpy(x), 1, 2, ceil_mode=True).numpy()
    np.testing.assert_allclose(y, torch_y, rtol=1e-6)
    np.testing.assert_allclose(y[0, 0], [-2, 4, 2], rtol=1e-6)
    np.testing.assert_allclose(onnx_y[0, 0], [4, 4, 1], rtol=1e-6)
