"""Every bad input gets a ValueError or TypeError whose message names the op and the
argument; and the inputs that are odd but fine (read-only, negative strides, views,
empty batch) work and are never modified."""
import numpy as np
import pytest

import ndpool
from oracle import tie_free

X2 = np.zeros((1, 2, 8, 8))
X1 = np.zeros((1, 2, 8))
X3 = np.zeros((1, 1, 6, 6, 6))
Y2, I2 = ndpool.max_pool2d(np.arange(128.0).reshape(1, 2, 8, 8), 2, return_indices=True)

E, T = ValueError, TypeError


class _Bare:
    """Another library's array, as DLPack shows it, on ``device`` (DLPack's (type, id);
    2 is CUDA); its library has no ``from_dlpack``."""

    def __init__(self, data, device=None):
        self._data, self._device = data, device

    def __dlpack__(self, **kwargs):
        return self._data.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._device or self._data.__dlpack_device__()


class _DLPackArray(_Bare):
    """... and one whose array-API namespace has a ``from_dlpack``."""

    def __array_namespace__(self, api_version=None):
        return type("namespace", (), {"from_dlpack": staticmethod(
            lambda a: _DLPackArray(np.from_dlpack(a)))})


def _on_gpu(data):
    return _DLPackArray(data, device=(2, 1))

BAD = [
    # kernel / stride / dilation: < 1, non-integer, bool
    ("kernel_zero", lambda: ndpool.max_pool2d(X2, 0), E, r"max_pool2d: kernel_size=0 must be at least 1"),
    ("kernel_negative", lambda: ndpool.avg_pool1d(X1, -2), E, r"avg_pool1d: kernel_size=-2"),
    ("kernel_float", lambda: ndpool.max_pool2d(X2, 2.0), T, r"max_pool2d: kernel_size=2\.0 must be an int"),
    ("kernel_bool", lambda: ndpool.min_pool2d(X2, True), T, r"min_pool2d: kernel_size=True"),
    ("kernel_tuple_bool", lambda: ndpool.max_pool2d(X2, (2, False)), T, r"max_pool2d: kernel_size="),
    ("kernel_string", lambda: ndpool.max_pool2d(X2, "2"), T, r"max_pool2d: kernel_size='2'"),
    ("stride_zero", lambda: ndpool.max_pool2d(X2, 2, stride=0), E, r"max_pool2d: stride=0 must be at least 1"),
    ("stride_float", lambda: ndpool.avg_pool2d(X2, 2, stride=1.5), T, r"avg_pool2d: stride=1\.5"),
    ("stride_bool", lambda: ndpool.lp_pool2d(X2, 2, 2, stride=True), T, r"lp_pool2d: stride=True"),
    ("stride_negative", lambda: ndpool.lp_pool1d(X1, 2, 2, stride=-1), E, r"lp_pool1d: stride=-1"),
    ("dilation_zero", lambda: ndpool.max_pool3d(X3, 2, dilation=0), E, r"max_pool3d: dilation=0 must be at least 1"),
    ("dilation_float", lambda: ndpool.max_pool1d(X1, 2, dilation=1.0), T, r"max_pool1d: dilation=1\.0"),
    ("dilation_bool", lambda: ndpool.min_pool1d(X1, 2, dilation=True), T, r"min_pool1d: dilation=True"),
    # padding too large or negative; window larger than the padded input
    ("padding_too_large", lambda: ndpool.max_pool2d(X2, 4, padding=3), E,
     r"max_pool2d: padding=3 must be at most half of kernel_size=4"),
    ("padding_too_large_tuple", lambda: ndpool.avg_pool2d(X2, (2, 4), padding=(0, 3)), E,
     r"avg_pool2d: padding=\(0, 3\) must be at most half of kernel_size=\(2, 4\)"),
    ("padding_negative", lambda: ndpool.max_pool2d(X2, 4, padding=-1), E, r"max_pool2d: padding=-1 must be at least 0"),
    ("padding_float", lambda: ndpool.avg_pool1d(X1, 4, padding=1.0), T, r"avg_pool1d: padding=1\.0"),
    ("padding_bool", lambda: ndpool.max_pool1d(X1, 4, padding=True), T, r"max_pool1d: padding=True"),
    ("window_too_large", lambda: ndpool.max_pool2d(X2, 9), E, r"max_pool2d: kernel_size=\(9, 9\) .*does not fit"),
    ("window_too_large_dilated", lambda: ndpool.min_pool1d(X1, 3, dilation=4), E,
     r"min_pool1d: kernel_size=\(3,\) with dilation=\(4,\) does not fit"),
    ("window_too_large_avg", lambda: ndpool.avg_pool3d(X3, (7, 1, 1)), E, r"avg_pool3d: kernel_size=\(7, 1, 1\)"),
    ("window_too_large_lp", lambda: ndpool.lp_pool2d(X2, 2, (2, 9)), E, r"lp_pool2d: kernel_size=\(2, 9\)"),
    ("window_all_padding", lambda: ndpool.max_pool1d(np.zeros((1, 1, 1)), 2, 2, 1, 2, True), E,
     r"max_pool1d: dilation=\(2,\) with padding=\(1,\) makes a window whose taps all fall in the padding"),
    # wrong number of dims; tuples of the wrong length
    ("dims_too_few", lambda: ndpool.max_pool2d(X2[0, 0], 2), E, r"max_pool2d: x must have 4 dims .* got shape \(8, 8\)"),
    ("dims_too_many", lambda: ndpool.avg_pool1d(X2[None], 2), E, r"avg_pool1d: x must have 3 dims"),
    ("dims_adaptive", lambda: ndpool.adaptive_avg_pool3d(X1, 2), E, r"adaptive_avg_pool3d: x must have 5 dims"),
    ("dims_global", lambda: ndpool.global_avg_pool(np.zeros((2, 3))), E, r"global_avg_pool: x must have shape \(N, C, \*spatial\)"),
    ("dims_scalar", lambda: ndpool.global_max_pool(np.float64(1)), E, r"global_max_pool: x must have shape"),
    ("empty_spatial", lambda: ndpool.max_pool2d(np.zeros((1, 1, 0, 4)), 2), E, r"max_pool2d: x has an empty spatial dim"),
    ("kernel_tuple_length", lambda: ndpool.max_pool2d(X2, (2, 2, 2)), E,
     r"max_pool2d: kernel_size=\(2, 2, 2\) must have 2 entries"),
    ("stride_tuple_length", lambda: ndpool.avg_pool3d(X3, 2, stride=(1, 1)), E, r"avg_pool3d: stride=\(1, 1\) must have 3 entries"),
    ("padding_tuple_length", lambda: ndpool.max_pool2d(X2, 2, padding=(1, 1, 1)), E,
     r"max_pool2d: padding=\(1, 1, 1\) must have 1 or 2 ints .*or 4 in torch.nn.functional.pad's order"),
    ("padding_empty", lambda: ndpool.avg_pool1d(X1, 2, padding=()), E, r"avg_pool1d: padding=\(\) must have 1 int \(both sides of each dim\), or 2 in"),
    ("dilation_tuple_length", lambda: ndpool.max_pool1d(X1, 2, dilation=(1, 1)), E, r"max_pool1d: dilation=\(1, 1\) must have 1 entries"),
    # dtypes
    ("dtype_object", lambda: ndpool.max_pool2d(X2.astype(object), 2), T, r"max_pool2d: x has dtype object"),
    ("dtype_string", lambda: ndpool.max_pool1d(np.full((1, 1, 4), "a"), 2), T, r"max_pool1d: x has dtype <U1"),
    ("dtype_str_argument", lambda: ndpool.max_pool1d("abcd", 2), T, r"max_pool1d: x must be an array, got str"),
    ("dtype_complex", lambda: ndpool.avg_pool2d(X2.astype(complex), 2), T, r"avg_pool2d: x has dtype complex128"),
    ("dtype_bool", lambda: ndpool.max_pool2d(X2.astype(bool), 2), T, r"max_pool2d: x has dtype bool.*astype"),
    ("dtype_bool_global", lambda: ndpool.global_max_pool(X2.astype(bool)), T, r"global_max_pool: x has dtype bool"),
    ("dtype_int_avg", lambda: ndpool.avg_pool2d(X2.astype(np.int32), 2), T, r"avg_pool2d: x has dtype int32"),
    ("dtype_uint8_lp", lambda: ndpool.lp_pool2d(X2.astype(np.uint8), 2, 2), T, r"lp_pool2d: x has dtype uint8"),
    ("dtype_int_adaptive_avg", lambda: ndpool.adaptive_avg_pool1d(X1.astype(np.int16), 2), T,
     r"adaptive_avg_pool1d: x has dtype int16"),
    ("dtype_int_global_avg", lambda: ndpool.global_avg_pool(X2.astype(np.int64)), T, r"global_avg_pool: x has dtype int64"),
    ("dtype_int_fractional", lambda: ndpool.fractional_max_pool2d(X2.astype(np.uint8), 2, output_size=3), T,
     r"fractional_max_pool2d: x has dtype uint8"),
    ("ragged_list", lambda: ndpool.max_pool1d([[[1.0, 2.0]], [[1.0]]], 1), T, r"max_pool1d: x could not be read"),
    # words: padding, layouts, ties, flags
    ("padding_word", lambda: ndpool.max_pool2d(X2, 2, padding="full"), E, r"max_pool2d: padding='full' is not a padding word"),
    ("padding_word_misspelt", lambda: ndpool.avg_pool2d(X2, 2, padding="SAEM"), E,
     r"avg_pool2d: padding='SAEM' is not a padding word \(use 'valid', 'same', 'same_lower' \(any case\)"),
    ("padding_word_lower_misspelt", lambda: ndpool.max_pool1d(X1, 2, padding="same_lowr"), E,
     r"max_pool1d: padding='same_lowr' is not a padding word"),
    ("padding_word_bytes", lambda: ndpool.max_pool1d(X1, 2, padding=b"same"), T, r"max_pool1d: padding=b'same' must be an int"),
    ("ceil_mode_with_same_lower", lambda: ndpool.max_pool2d(X2, 2, padding="SAME_LOWER", ceil_mode=True), E,
     r"max_pool2d: ceil_mode=True cannot be combined with padding='SAME_LOWER'"),
    # explicit (before, after) padding: pairs, TensorFlow's rows, torch.nn.functional.pad's order
    ("pair_wrong_length", lambda: ndpool.max_pool2d(X2, 3, padding=((1, 2, 3), (1, 1))), E,
     r"max_pool2d: padding=\(\(1, 2, 3\), \(1, 1\)\) holds \(1, 2, 3\), which is not a \(before, after\) pair"),
    ("pair_of_one", lambda: ndpool.avg_pool1d(X1, 3, padding=[[1]]), E, r"avg_pool1d: padding=\[\[1\]\] holds \(1,\)"),
    ("pair_of_floats", lambda: ndpool.max_pool2d(X2, 3, padding=((1.0, 2), (1, 1))), T,
     r"max_pool2d: padding=.* holds \(1\.0, 2\), which is not a \(before, after\) pair of ints"),
    ("pairs_count", lambda: ndpool.max_pool2d(X2, 3, padding=((1, 1),) * 3), E,
     r"max_pool2d: padding=.* has 3 \(before, after\) pairs; give 1, 2 \(one per spatial dim\) or 4 \(TensorFlow's"),
    ("pairs_negative", lambda: ndpool.avg_pool2d(X2, 3, padding=((1, -1), (0, 0))), E,
     r"avg_pool2d: padding=\(\(1, -1\), \(0, 0\)\) must be at least 0"),
    ("pairs_too_large", lambda: ndpool.max_pool1d(X1, 3, padding=((2**31, 0),)), E, r"max_pool1d: padding=.* must be at most"),
    ("pairs_float_array", lambda: ndpool.max_pool1d(X1, 3, padding=np.array([[1.0, 1.0]])), T,
     r"max_pool1d: padding=array.* must hold ints, not float64"),
    ("flat_negative", lambda: ndpool.max_pool2d(X2, 3, padding=(1, -1, 0, 0)), E,
     r"max_pool2d: padding=\(1, -1, 0, 0\) must be at least 0"),
    ("tensorflow_batch_pad", lambda: ndpool.max_pool2d(X2, 3, padding=[[1, 0], [0, 0], [1, 1], [1, 1]]), E,
     r"max_pool2d: padding=.* pads the batch or channel dim; with rank \+ 2 pairs \(batch, channels, \.\.\.\) those rows must be \(0, 0\)"),
    ("tensorflow_channel_pad_nhwc", lambda: ndpool.avg_pool2d(np.zeros((1, 8, 8, 2)), 3, padding=[[0, 0], [1, 1], [1, 1], [0, 1]],
                                                              layout="channels_last"), E,
     r"avg_pool2d: padding=.* pads the batch or channel dim; with rank \+ 2 pairs \(batch, \.\.\., channels\)"),
    ("tensorflow_nhwc_rows_for_nchw_data", lambda: ndpool.max_pool2d(X2, 3, padding=[[0, 0], [1, 1], [1, 1], [0, 0]]), E,
     r"max_pool2d: padding=.* pads the batch or channel dim"),
    ("pads_window_all_padding", lambda: ndpool.max_pool1d(X1, 2, 1, ((2, 0),)), E,
     r"max_pool1d: kernel_size=\(2,\) with padding=\(\(2, 0\),\) makes a window whose taps all fall in the padding .*"
     r"\(each side's padding must be smaller than the kernel\)"),
    ("pads_window_all_padding_after", lambda: ndpool.avg_pool2d(X2, 2, 1, (0, 2, 0, 0)), E,
     r"avg_pool2d: kernel_size=\(2, 2\) with padding=\(\(0, 0\), \(0, 2\)\) makes a window"),
    ("lp_padding_too_large", lambda: ndpool.lp_pool1d(X1, 2, 2, padding=2), E,
     r"lp_pool1d: padding=2 must be at most half of kernel_size=2 \(give \(before, after\) pairs for more\)"),
    ("avg_dilation_zero", lambda: ndpool.avg_pool2d(X2, 2, dilation=0), E, r"avg_pool2d: dilation=0 must be at least 1"),
    ("lp_dilation_float", lambda: ndpool.lp_pool1d(X1, 2, 2, dilation=1.5), T, r"lp_pool1d: dilation=1\.5"),
    ("storage_order_two", lambda: ndpool.max_pool2d(X2, 2, return_indices=True, storage_order=2), E,
     r"max_pool2d: storage_order=2 is not 0 \(row-major indices\) or 1 \(column-major, ONNX's\)"),
    ("storage_order_bool", lambda: ndpool.min_pool1d(X1, 2, storage_order=True), E, r"min_pool1d: storage_order=True"),
    ("storage_order_string", lambda: ndpool.max_pool1d(X1, 2, storage_order="F"), E, r"max_pool1d: storage_order='F'"),
    ("layout_word", lambda: ndpool.max_pool2d(X2, 2, layout="NHWC"), E, r"max_pool2d: layout='NHWC' is not one of"),
    ("layout_word_avg", lambda: ndpool.avg_pool1d(X1, 2, layout=None), E, r"avg_pool1d: layout=None"),
    ("layout_unhashable", lambda: ndpool.max_pool2d(X2, 2, layout=["channels_last"]), E,
     r"max_pool2d: layout=\[.channels_last.\] is not one of"),
    ("layout_global", lambda: ndpool.global_avg_pool(X2, layout="NHWC"), E, r"global_avg_pool: layout='NHWC' is not one of"),
    ("layout_global_unhashable", lambda: ndpool.global_max_pool(X2, layout=[1]), E, r"global_max_pool: layout=\[1\] is not one of"),
    ("layout_adaptive", lambda: ndpool.adaptive_avg_pool2d(X2, 2, layout="nhwc"), E, r"adaptive_avg_pool2d: layout='nhwc'"),
    ("layout_lp", lambda: ndpool.lp_pool2d(X2, 2, 2, layout="last"), E, r"lp_pool2d: layout='last'"),
    ("layout_fractional", lambda: ndpool.fractional_max_pool2d(X2, 2, output_size=3, layout=None), E,
     r"fractional_max_pool2d: layout=None"),
    ("layout_unpool", lambda: ndpool.max_unpool2d(Y2, I2, 2, layout="NCHW"), E, r"max_unpool2d: layout='NCHW'"),
    ("dims_global_channels_last", lambda: ndpool.global_max_pool(np.zeros((2, 3)), layout="channels_last"), E,
     r"global_max_pool: x must have shape \(N, \*spatial, C\) with at least one spatial dim \(layout='channels_last'\)"),
    ("unpool_channels_last_index_shape", lambda: ndpool.max_unpool2d(np.moveaxis(Y2, 1, -1), I2, 2, layout="channels_last"), E,
     r"max_unpool2d: indices has shape \(1, 2, 4, 4\) but x has shape \(1, 4, 4, 2\)"),
    ("ceil_mode_with_same", lambda: ndpool.max_pool2d(X2, 2, padding="same", ceil_mode=True), E,
     r"max_pool2d: ceil_mode=True cannot be combined with padding='same'"),
    ("ceil_mode_with_valid", lambda: ndpool.avg_pool1d(X1, 2, padding="valid", ceil_mode=True), E,
     r"avg_pool1d: ceil_mode=True cannot be combined with padding='valid'"),
    ("ceil_mode_not_bool", lambda: ndpool.max_pool2d(X2, 2, ceil_mode=1), T, r"max_pool2d: ceil_mode=1 must be True or False"),
    ("return_indices_not_bool", lambda: ndpool.max_pool2d(X2, 2, return_indices="yes"), T, r"max_pool2d: return_indices='yes'"),
    ("count_include_pad_not_bool", lambda: ndpool.avg_pool2d(X2, 2, count_include_pad=None), T,
     r"avg_pool2d: count_include_pad=None"),
    ("keepdims_not_bool", lambda: ndpool.global_avg_pool(X2, keepdims=2), T, r"global_avg_pool: keepdims=2"),
    ("ties_word", lambda: ndpool.min_pool2d(X2, 2, ties="random"), E, r"min_pool2d: ties='random' is not one of"),
    ("divisor_zero", lambda: ndpool.avg_pool2d(X2, 2, divisor_override=0), E, r"avg_pool2d: divisor_override=0"),
    ("divisor_float", lambda: ndpool.avg_pool2d(X2, 2, divisor_override=1.5), E, r"avg_pool2d: divisor_override=1\.5"),
    ("norm_type_zero", lambda: ndpool.lp_pool2d(X2, 0, 2), E, r"lp_pool2d: norm_type=0 must be a positive"),
    ("norm_type_inf", lambda: ndpool.lp_pool1d(X1, float("inf"), 2), E, r"lp_pool1d: norm_type=inf"),
    ("norm_type_string", lambda: ndpool.lp_pool1d(X1, "2", 2), E, r"lp_pool1d: norm_type='2'"),
    # adaptive output sizes
    ("adaptive_zero", lambda: ndpool.adaptive_max_pool2d(X2, 0), E, r"adaptive_max_pool2d: output_size=\(0, 0\) must be at least 1"),
    ("adaptive_negative", lambda: ndpool.adaptive_avg_pool1d(X1, -3), E, r"adaptive_avg_pool1d: output_size=\(-3,\)"),
    ("adaptive_length", lambda: ndpool.adaptive_avg_pool2d(X2, (2, 2, 2)), E,
     r"adaptive_avg_pool2d: output_size=\(2, 2, 2\) must have 2 entries"),
    ("adaptive_float", lambda: ndpool.adaptive_max_pool3d(X3, 2.5), T, r"adaptive_max_pool3d: output_size=\(2\.5, 2\.5, 2\.5\)"),
    ("adaptive_bool", lambda: ndpool.adaptive_max_pool1d(X1, True), T, r"adaptive_max_pool1d: output_size=\(True,\)"),
    # fractional
    ("fractional_size_too_big", lambda: ndpool.fractional_max_pool2d(X2, 2, output_size=8), E,
     r"fractional_max_pool2d: output size \(8, 8\) with kernel_size=\(2, 2\) does not fit"),
    ("fractional_size_negative", lambda: ndpool.fractional_max_pool3d(X3, 2, output_size=-1), E,
     r"fractional_max_pool3d: output_size=-1 must be at least 0"),
    ("fractional_size_zero_kernel_too_big", lambda: ndpool.fractional_max_pool2d(X2, (10, 2), output_size=(0, 3)), E,
     r"fractional_max_pool2d: output size \(0, 3\) with kernel_size=\(10, 2\) does not fit .*need out \+ kernel - 1 <= in"),
    ("fractional_kernel_zero", lambda: ndpool.fractional_max_pool2d(X2, 0, output_size=2), E,
     r"fractional_max_pool2d: kernel_size=0"),
    ("fractional_ratio_one", lambda: ndpool.fractional_max_pool2d(X2, 2, output_ratio=1.0), E,
     r"fractional_max_pool2d: output_ratio=1\.0 must be 2 numbers in \(0, 1\)"),
    ("fractional_ratio_length", lambda: ndpool.fractional_max_pool3d(X3, 2, output_ratio=(0.5, 0.5)), E,
     r"fractional_max_pool3d: output_ratio=\(0\.5, 0\.5\)"),
    ("fractional_both", lambda: ndpool.fractional_max_pool2d(X2, 2, output_size=4, output_ratio=0.5), E,
     r"fractional_max_pool2d: give exactly one of output_size and output_ratio"),
    ("fractional_neither", lambda: ndpool.fractional_max_pool3d(X3, 2), E,
     r"fractional_max_pool3d: give exactly one of output_size and output_ratio"),
    ("samples_shape", lambda: ndpool.fractional_max_pool2d(X2, 2, output_size=4, samples=np.zeros((1, 2, 3))), E,
     r"fractional_max_pool2d: samples must have shape \(1, 2, 2\), got \(1, 2, 3\)"),
    ("samples_batch", lambda: ndpool.fractional_max_pool2d(X2, 2, output_size=4, samples=np.zeros((3, 2, 2))), E,
     r"fractional_max_pool2d: samples must have shape"),
    ("samples_unbatched_shape_for_batch", lambda: ndpool.fractional_max_pool2d(
        np.zeros((2, 2, 8, 8)), 2, output_size=4, samples=np.zeros((2, 2))), E,
     r"fractional_max_pool2d: samples must have shape \(2, 2, 2\), got \(2, 2\)"),
    ("samples_one", lambda: ndpool.fractional_max_pool2d(X2, 2, output_size=4, samples=np.ones((1, 2, 2))), E,
     r"fractional_max_pool2d: samples must lie in \[0, 1\)"),
    ("samples_negative", lambda: ndpool.fractional_max_pool3d(X3, 2, output_size=3, samples=-np.ones((1, 1, 3)) / 4), E,
     r"fractional_max_pool3d: samples must lie in \[0, 1\)"),
    ("samples_nan", lambda: ndpool.fractional_max_pool2d(X2, 2, output_size=4, samples=np.full((1, 2, 2), np.nan)), E,
     r"fractional_max_pool2d: samples must lie in \[0, 1\)"),
    ("samples_int", lambda: ndpool.fractional_max_pool2d(X2, 2, output_size=4, samples=np.zeros((1, 2, 2), int)), T,
     r"fractional_max_pool2d: samples has dtype int64"),
    # max_unpool
    ("unpool_index_too_big", lambda: ndpool.max_unpool2d(Y2, I2 + 100, 2), E,
     r"max_unpool2d: indices must lie in \[0, 64\) .*found 163"),
    ("unpool_index_negative", lambda: ndpool.max_unpool2d(Y2, I2 * 0 - 1, 2), E, r"max_unpool2d: indices must lie in .*found -1"),
    ("unpool_index_shape", lambda: ndpool.max_unpool2d(Y2, I2[..., :2], 2), E,
     r"max_unpool2d: indices has shape \(1, 2, 4, 2\) but x has shape \(1, 2, 4, 4\)"),
    ("unpool_index_float", lambda: ndpool.max_unpool2d(Y2, I2.astype(float), 2), T, r"max_unpool2d: indices has dtype float64"),
    ("unpool_index_bool", lambda: ndpool.max_unpool2d(Y2, I2 > 3, 2), T, r"max_unpool2d: indices has dtype bool"),
    ("unpool_output_size_big", lambda: ndpool.max_unpool2d(Y2, I2, 2, output_size=(12, 12)), E,
     r"max_unpool2d: output_size=\(12, 12\) must lie strictly between \(6, 6\) and \(10, 10\)"),
    ("unpool_output_size_small", lambda: ndpool.max_unpool2d(Y2, I2, 2, output_size=(6, 8)), E,
     r"max_unpool2d: output_size=\(6, 8\) must lie strictly between"),
    ("unpool_output_size_length", lambda: ndpool.max_unpool2d(Y2, I2, 2, output_size=(1, 2, 8)), E,
     r"max_unpool2d: output_size=\(1, 2, 8\) must have 2 entries"),
    ("unpool_output_size_float", lambda: ndpool.max_unpool2d(Y2, I2, 2, output_size=(8.0, 8)), T,
     r"max_unpool2d: output_size=\(8\.0, 8\)"),
    ("unpool_kernel_zero", lambda: ndpool.max_unpool2d(Y2, I2, 0), E, r"max_unpool2d: kernel_size=0"),
    ("unpool_empty", lambda: ndpool.max_unpool1d(np.zeros((1, 1, 1)), np.zeros((1, 1, 1), int), 1, 1, 1), E,
     r"max_unpool1d: .*size"),
    ("unpool_dtype", lambda: ndpool.max_unpool2d(Y2.astype(complex), I2, 2), T, r"max_unpool2d: x has dtype complex128"),
    # softmax-weighted pooling: the logits must match x
    ("attention_logits_shape", lambda: ndpool.attention_pool2d(X2, X2[:, :1], 2), E,
     r"attention_pool2d: logits has shape \(1, 1, 8, 8\) but x has shape \(1, 2, 8, 8\)"),
    ("attention_logits_dtype", lambda: ndpool.attention_pool1d(X1, X1.astype(int), 2), T,
     r"attention_pool1d: logits has dtype int64; use a float dtype"),
    ("soft_padding_too_large", lambda: ndpool.soft_pool2d(X2, 2, padding=2), E,
     r"soft_pool2d: padding=2 must be at most half of kernel_size=2"),
    ("soft_dtype", lambda: ndpool.soft_pool1d(X1.astype(np.uint8), 2), T, r"soft_pool1d: x has dtype uint8"),
    ("clip_heads", lambda: ndpool.nn.AttentionPool2d(8, 6, 4), E,
     r"AttentionPool2d: embed_dim=6 must be a multiple of num_heads=4"),
    # arrays of other libraries (DLPack): in device memory, or from a library without from_dlpack
    ("dlpack_gpu", lambda: ndpool.max_pool2d(_on_gpu(X2), 2), E,
     r"^max_pool2d: x is on device cuda:1, but ndpool computes on the CPU \(copy it to host"),
    ("dlpack_gpu_indices", lambda: ndpool.max_unpool2d(_DLPackArray(Y2), _on_gpu(I2), 2), E,
     r"^max_unpool2d: indices is on device cuda:1"),
    ("dlpack_gpu_vjp", lambda: ndpool.vjp(ndpool.global_max_pool, _on_gpu(X2)), E,
     r"^global_max_pool: x is on device cuda:1"),
    ("dlpack_gpu_dy", lambda: ndpool.vjp(ndpool.avg_pool2d, _DLPackArray(X2), 2)[1](
        _on_gpu(np.zeros((1, 2, 4, 4)))), E, r"^avg_pool2d pullback: dy is on device cuda:1"),
    ("dlpack_gpu_coarsen", lambda: ndpool.coarsen(_on_gpu(X2), 2), E, r"^coarsen: x is on device cuda:1"),
    ("dlpack_no_from_dlpack", lambda: ndpool.pool(_Bare(X2), "max", 2), T,
     r"^pool: x is a .*_Bare, whose library has no from_dlpack"),
    ("dlpack_dtype", lambda: ndpool.avg_pool2d(_DLPackArray(X2.astype(int)), 2), T,
     r"^avg_pool2d: x has dtype int64, which is not supported"),
    # vjp and layers
    ("vjp_not_ndpool", lambda: ndpool.vjp(np.max, X2), T, r"vjp: op must be an ndpool op"),
    ("vjp_lambda", lambda: ndpool.vjp(lambda x: x, X2), T, r"vjp: op must be an ndpool op"),
    ("nn_backward_first", lambda: ndpool.nn.MaxPool2d(2).backward(np.zeros((1, 2, 4, 4))), RuntimeError,
     r"MaxPool2d\.backward: call forward first"),
    ("nn_bad_argument", lambda: ndpool.nn.AvgPool2d(2, bogus=1), T, r"AvgPool2d: "),
    ("nn_bad_kernel", lambda: ndpool.nn.MaxPool1d(0)(X1), E, r"max_pool1d: kernel_size=0"),
    ("vjp_wrt_unknown", lambda: ndpool.vjp(ndpool.global_gem_pool, X2, wrt="eps"), E,
     r"vjp: wrt='eps' is not one of 'x', 'p' for global_gem_pool"),
    ("vjp_wrt_x_only", lambda: ndpool.vjp(ndpool.avg_pool2d, X2, 2, wrt=("x", "p")), E,
     r"vjp: wrt='p' is not one of 'x' for avg_pool2d"),
    ("vjp_wrt_type", lambda: ndpool.vjp(ndpool.avg_pool2d, X2, 2, wrt=None), T, r"vjp: wrt=None must be"),
    # the variants (issue 12)
    ("stochastic_negative", lambda: ndpool.stochastic_pool2d(X2 - 1, 2), E,
     r"stochastic_pool2d: x must be non-negative, found -1\.0 \(.*apply a ReLU first\)"),
    ("stochastic_negative_eval", lambda: ndpool.stochastic_pool3d(X3 - 1, 2, training=False), E,
     r"stochastic_pool3d: x must be non-negative"),
    ("stochastic_training", lambda: ndpool.stochastic_pool2d(X2, 2, training=1), T,
     r"stochastic_pool2d: training=1 must be True or False"),
    ("stochastic_kernel", lambda: ndpool.stochastic_pool3d(X3, 7), E,
     r"stochastic_pool3d: kernel_size=\(7, 7, 7\) does not fit in the input of spatial size \(6, 6, 6\)"),
    ("stochastic_int", lambda: ndpool.stochastic_pool2d(X2.astype(int), 2), T, r"stochastic_pool2d: x has dtype int64"),
    ("stochastic_rng", lambda: ndpool.stochastic_pool2d(X2, 2, rng="x"), T,
     r"stochastic_pool2d: rng='x' is not a seed or a generator"),
    ("stochastic_rng_negative", lambda: ndpool.stochastic_pool2d(X2, 2, rng=-1), E,
     r"stochastic_pool2d: rng=-1 is not a seed or a generator"),
    ("blur_filter_big", lambda: ndpool.blur_pool2d(X2, 8), E,
     r"blur_pool2d: filter_size=8 must be at most 7 \(the binomial filters have 1 to 7 taps\)"),
    ("blur_filter_zero", lambda: ndpool.blur_pool1d(X1, 0), E, r"blur_pool1d: filter_size=0 must be at least 1"),
    ("blur_filter_float", lambda: ndpool.blur_pool2d(X2, 3.0), T, r"blur_pool2d: filter_size=3\.0 must be an int"),
    ("blur_stride", lambda: ndpool.blur_pool3d(X3, 3, 0), E, r"blur_pool3d: stride=0 must be at least 1"),
    ("blur_mode", lambda: ndpool.blur_pool2d(X2, 3, 2, "reflection"), E,
     r"blur_pool2d: padding_mode='reflection' is not one of 'reflect', 'zeros', 'replicate', 'circular'"),
    ("blur_reflect_small", lambda: ndpool.blur_pool2d(np.zeros((1, 1, 3, 8)), 7), E,
     r"blur_pool2d: padding_mode='reflect' with filter_size=7 pads 3 cells, .*spatial size \(3, 8\)"),
    ("blur_circular_small", lambda: ndpool.blur_pool1d(np.zeros((1, 1, 2)), 7, padding_mode="circular"), E,
     r"blur_pool1d: padding_mode='circular' with filter_size=7 pads 3 cells, more than"),
    ("blur_int", lambda: ndpool.blur_pool2d(X2.astype(np.uint8)), T, r"blur_pool2d: x has dtype uint8"),
    ("blur_dims", lambda: ndpool.blur_pool3d(X1), E, r"blur_pool3d: x must have 5 dims"),
    ("max_blur_kernel", lambda: ndpool.max_blur_pool2d(X2, 9), E,
     r"max_blur_pool2d: kernel_size=\(9, 9\) does not fit in the input of spatial size \(8, 8\)"),
    ("max_blur_filter", lambda: ndpool.max_blur_pool2d(X2, 2, 8), E, r"max_blur_pool2d: filter_size=8 must be at most 7"),
    ("gem_p_zero", lambda: ndpool.global_gem_pool(X2, p=0), E, r"global_gem_pool: p=0 must be a positive finite number"),
    ("gem_p_string", lambda: ndpool.global_gem_pool(X2, p="3"), T, r"global_gem_pool: p='3' must be a positive number"),
    ("gem_p_shape", lambda: ndpool.global_gem_pool(X2, p=np.ones(3)), E,
     r"global_gem_pool: p has shape \(3,\); use a number, shape \(1,\) or one per channel \(2,\)"),
    ("gem_p_nan", lambda: ndpool.global_gem_pool(X2, p=np.array([np.nan])), E, r"global_gem_pool: p=.* must hold positive finite"),
    ("gem_eps", lambda: ndpool.global_gem_pool(X2, eps=0), E, r"global_gem_pool: eps=0 must be a positive finite number"),
    ("gem_eps_none", lambda: ndpool.global_gem_pool(X2, eps=None), T, r"global_gem_pool: eps=None must be a positive number"),
    ("gem_dims", lambda: ndpool.global_gem_pool(np.zeros((2, 3))), E, r"global_gem_pool: x must have shape \(N, C, \*spatial\)"),
    ("gem_keepdims", lambda: ndpool.global_gem_pool(X2, keepdims=1), T, r"global_gem_pool: keepdims=1 must be True or False"),
    ("gem_layer_p", lambda: ndpool.nn.GlobalGeMPool(p="a"), T, r"GlobalGeMPool: p='a' must be a number"),
    ("pyramid_mode", lambda: ndpool.spatial_pyramid_pool(X2, mode="sum"), E,
     r"spatial_pyramid_pool: mode='sum' is not one of 'max', 'avg'"),
    ("pyramid_levels_empty", lambda: ndpool.spatial_pyramid_pool(X2, levels=()), T,
     r"spatial_pyramid_pool: levels=\(\) must be an int or a non-empty tuple of ints"),
    ("pyramid_level_zero", lambda: ndpool.spatial_pyramid_pool(X2, levels=(1, 0)), E,
     r"spatial_pyramid_pool: levels=\(1, 0\) must hold sizes of at least 1"),
    ("pyramid_level_float", lambda: ndpool.spatial_pyramid_pool(X2, levels=(1, 2.0)), T, r"spatial_pyramid_pool: levels="),
    ("pyramid_dims", lambda: ndpool.spatial_pyramid_pool(X1), E,
     r"spatial_pyramid_pool: x must have 4 dims \(N, C, H, W\) or 5 \(N, C, D, H, W\), got shape \(1, 2, 8\)"),
    ("pyramid_int_avg", lambda: ndpool.spatial_pyramid_pool(X2.astype(int), mode="avg"), T,
     r"spatial_pyramid_pool: x has dtype int64"),
]


@pytest.mark.parametrize("call, error, message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(backend, call, error, message):
    with ndpool.use_backend(backend):
        with pytest.raises(error, match=message):
            call()


PULLBACKS = [
    ("max_pool2d", lambda: ndpool.vjp(ndpool.max_pool2d, X2, 2), (1, 2, 3, 3), r"max_pool2d pullback: dy has shape \(1, 2, 3, 3\)"),
    ("max_pool2d_indices", lambda: ndpool.vjp(ndpool.max_pool2d, X2, 2, return_indices=True), (1, 2, 4),
     r"max_pool2d pullback: dy has shape"),
    ("min_pool1d_split", lambda: ndpool.vjp(ndpool.min_pool1d, X1, 2, ties="split"), (1, 2, 5), r"min_pool1d pullback: dy"),
    ("avg_pool3d", lambda: ndpool.vjp(ndpool.avg_pool3d, X3, 2), (1, 1, 3, 3), r"avg_pool3d pullback: dy has shape"),
    ("lp_pool2d", lambda: ndpool.vjp(ndpool.lp_pool2d, X2 + 1, 2, 2), (2, 4, 4), r"lp_pool2d pullback: dy"),
    ("adaptive_avg", lambda: ndpool.vjp(ndpool.adaptive_avg_pool2d, X2, 3), (1, 2, 3, 4), r"adaptive_avg_pool2d pullback: dy"),
    ("adaptive_max", lambda: ndpool.vjp(ndpool.adaptive_max_pool1d, X1, 3), (1, 2, 4), r"adaptive_max_pool1d pullback: dy"),
    ("fractional", lambda: ndpool.vjp(ndpool.fractional_max_pool2d, X2, 2, output_size=3, rng=0), (1, 2, 4, 4),
     r"fractional_max_pool2d pullback: dy"),
    ("unpool", lambda: ndpool.vjp(ndpool.max_unpool2d, Y2, I2, 2), (1, 2, 4, 4), r"max_unpool2d pullback: dy has shape"),
    ("soft", lambda: ndpool.vjp(ndpool.soft_pool2d, X2, 2, ceil_mode=True), (1, 2, 3, 3),
     r"soft_pool2d pullback: dy has shape \(1, 2, 3, 3\) but the output has shape \(1, 2, 4, 4\)"),
    ("attention", lambda: ndpool.attention_pool1d._ndpool_impl(X1, X1, 2, grad=True), (1, 2, 3),
     r"attention_pool1d pullback: dy has shape \(1, 2, 3\) but the output has shape \(1, 2, 4\)"),
    ("global_max", lambda: ndpool.vjp(ndpool.global_max_pool, X2), (1, 2, 1, 1), r"global_max_pool pullback: dy has shape"),
    ("global_avg", lambda: ndpool.vjp(ndpool.global_avg_pool, X2, keepdims=True), (1, 2), r"global_avg_pool pullback: dy"),
    ("global_channels_last", lambda: ndpool.vjp(ndpool.global_max_pool, X2, True, "channels_last"), (1, 2, 1, 1),
     r"global_max_pool pullback: dy has shape \(1, 2, 1, 1\) but the output has shape \(1, 1, 1, 8\)"),
    ("fractional_channels_last", lambda: ndpool.vjp(ndpool.fractional_max_pool2d, np.moveaxis(X2, 1, -1), 2,
                                                    output_size=3, rng=0, layout="channels_last"), (1, 2, 3, 3),
     r"fractional_max_pool2d pullback: dy has shape \(1, 2, 3, 3\) but the output has shape \(1, 3, 3, 2\)"),
    ("stochastic", lambda: ndpool.vjp(ndpool.stochastic_pool2d, X2, 2, rng=0), (1, 2, 8), r"stochastic_pool2d pullback: dy has shape"),
    ("stochastic_eval", lambda: ndpool.vjp(ndpool.stochastic_pool3d, X3, 2, training=False), (1, 1, 3), r"stochastic_pool3d pullback: dy"),
    ("gem", lambda: ndpool.vjp(ndpool.global_gem_pool, X2, wrt=("x", "p")), (1, 2, 1), r"global_gem_pool pullback: dy has shape"),
    ("blur", lambda: ndpool.vjp(ndpool.blur_pool1d, X1), (1, 2, 3), r"blur_pool1d pullback: dy has shape \(1, 2, 3\) but the output has shape \(1, 2, 4\)"),
    ("max_blur", lambda: ndpool.vjp(ndpool.max_blur_pool2d, X2), (1, 2, 3, 4), r"max_blur_pool2d pullback: dy"),
    ("pyramid", lambda: ndpool.vjp(ndpool.spatial_pyramid_pool, X2), (1, 20), r"spatial_pyramid_pool pullback: dy has shape \(1, 20\)"),
    ("unpool_channels_last", lambda: ndpool.vjp(ndpool.max_unpool2d, np.moveaxis(Y2, 1, -1), np.moveaxis(I2, 1, -1), 2,
                                                layout="channels_last"), (1, 2, 8, 8),
     r"max_unpool2d pullback: dy has shape \(1, 2, 8, 8\) but the output has shape \(1, 8, 8, 2\)"),
]


@pytest.mark.parametrize("make, shape, message", [p[1:] for p in PULLBACKS], ids=[p[0] for p in PULLBACKS])
def test_pullback_given_the_wrong_shape(backend, make, shape, message):
    with ndpool.use_backend(backend):
        _, pullback = make()
        with pytest.raises(ValueError, match=message):
            pullback(np.zeros(shape))


def test_pullback_given_a_non_numeric_dy(backend):
    with ndpool.use_backend(backend):
        y, pullback = ndpool.vjp(ndpool.avg_pool2d, X2, 2)
        with pytest.raises(TypeError, match=r"avg_pool2d pullback: dy has dtype"):
            pullback(np.zeros(y.shape, dtype=object))


def test_nn_layer_rejects_the_wrong_gradient_shape(backend):
    layer = ndpool.nn.AvgPool2d(2)
    with ndpool.use_backend(backend):
        layer(X2)
        with pytest.raises(ValueError, match=r"avg_pool2d pullback: dy has shape"):
            layer.backward(np.zeros((1, 2, 8, 8)))
