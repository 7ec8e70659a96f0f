"""CLIP's global attention pooling (Radford et al. 2021), forward and backward in NumPy.

The plane (N, C, H, W) becomes H·W tokens of C features, with their mean prepended; the
learned positional embedding is added, and multi-head attention whose one query is the
mean token pools the tokens; an output projection follows. The parameters keep CLIP's
names and PyTorch's layouts (a Linear's weight is (out, in): ``y = x @ W.T + b``), so a
CLIP checkpoint's tensors load as they are.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

from ._errors import fail, type_fail

NAMES = ("positional_embedding", "q_proj.weight", "q_proj.bias", "k_proj.weight",
         "k_proj.bias", "v_proj.weight", "v_proj.bias", "c_proj.weight", "c_proj.bias")


def initial_params(spacial_dim: int, embed_dim: int, output_dim: int, rng,
                   dtype) -> Dict[str, np.ndarray]:
    """CLIP's initialisation: the embedding ~ N(0, 1) / sqrt(embed_dim), and each
    projection as torch.nn.Linear's default (weight and bias ~ U(-1/sqrt(in), 1/sqrt(in)))."""
    draw = np.random.default_rng(rng)
    bound = 1 / np.sqrt(embed_dim)
    params = {"positional_embedding":
              draw.standard_normal((spacial_dim ** 2 + 1, embed_dim)) / np.sqrt(embed_dim)}
    for name, out in (("q_proj", embed_dim), ("k_proj", embed_dim), ("v_proj", embed_dim),
                      ("c_proj", output_dim)):
        params[f"{name}.weight"] = draw.uniform(-bound, bound, (out, embed_dim))
        params[f"{name}.bias"] = draw.uniform(-bound, bound, (out,))
    return {name: value.astype(dtype) for name, value in params.items()}


def check_params(owner: str, params: Dict[str, np.ndarray], shapes: Dict[str, tuple]):
    """Every parameter present, an ndarray of a float dtype and of its shape."""
    for name, shape in shapes.items():
        value = params.get(name)
        if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
            type_fail(owner, f"params[{name!r}] must be a float ndarray, got "
                      f"{type(value).__name__}")
        if value.shape != shape:
            fail(owner, f"params[{name!r}] has shape {value.shape}, expected {shape}")


def _heads(a: np.ndarray, num_heads: int) -> np.ndarray:
    """(..., C) as (..., heads, C / heads)."""
    return a.reshape(a.shape[:-1] + (num_heads, a.shape[-1] // num_heads))


def forward(x: np.ndarray, params: Dict[str, np.ndarray], num_heads: int
            ) -> Tuple[np.ndarray, tuple]:
    """``(y, cache)``: y of shape (N, output_dim) from x of shape (N, C, H, W)."""
    n, c = x.shape[:2]
    tokens = x.reshape(n, c, -1).transpose(0, 2, 1)                  # (N, HW, C)
    z = np.concatenate([tokens.mean(axis=1, keepdims=True), tokens], axis=1)
    z = z + params["positional_embedding"]                           # (N, L, C)
    q = z[:, 0] @ params["q_proj.weight"].T + params["q_proj.bias"]  # the mean token asks
    k = z @ params["k_proj.weight"].T + params["k_proj.bias"]
    v = z @ params["v_proj.weight"].T + params["v_proj.bias"]
    qh, kh, vh = _heads(q, num_heads), _heads(k, num_heads), _heads(v, num_heads)
    scale = 1 / np.sqrt(qh.shape[-1])
    scores = np.einsum("nhd,nlhd->nhl", qh, kh) * scale
    scores = scores - scores.max(axis=-1, keepdims=True)
    attention = np.exp(scores)
    attention /= attention.sum(axis=-1, keepdims=True)               # (N, heads, L)
    o = np.einsum("nhl,nlhd->nhd", attention, vh).reshape(n, c)
    y = o @ params["c_proj.weight"].T + params["c_proj.bias"]
    return y, (x.shape, z, qh, kh, vh, attention, o, scale)


def backward(dy: np.ndarray, params: Dict[str, np.ndarray], cache: tuple
             ) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
    """``(dx, grads)`` of ``forward``, ``grads`` keyed as ``params``."""
    shape, z, qh, kh, vh, attention, o, scale = cache
    n, c = shape[:2]
    grads = {"c_proj.weight": dy.T @ o, "c_proj.bias": dy.sum(axis=0)}
    do = _heads(dy @ params["c_proj.weight"], qh.shape[1])           # (N, heads, d)
    d_attention = np.einsum("nhd,nlhd->nhl", do, vh)
    dvh = np.einsum("nhl,nhd->nlhd", attention, do)
    # softmax backward: a · (da − Σ a·da)
    d_scores = attention * (d_attention - (d_attention * attention).sum(axis=-1, keepdims=True))
    dq = np.einsum("nhl,nlhd->nhd", d_scores, kh).reshape(n, c) * scale
    dk = np.einsum("nhl,nhd->nlhd", d_scores, qh).reshape(z.shape) * scale
    dv = dvh.reshape(z.shape)
    flat_z = z.reshape(-1, c)
    grads["q_proj.weight"], grads["q_proj.bias"] = dq.T @ z[:, 0], dq.sum(axis=0)
    for name, grad in (("k_proj", dk), ("v_proj", dv)):
        flat = grad.reshape(-1, c)
        grads[f"{name}.weight"], grads[f"{name}.bias"] = flat.T @ flat_z, flat.sum(axis=0)
    dz = dk @ params["k_proj.weight"] + dv @ params["v_proj.weight"]
    dz[:, 0] += dq @ params["q_proj.weight"]
    grads["positional_embedding"] = dz.sum(axis=0)
    # the mean token is the mean of the others: its gradient spreads over them
    d_tokens = dz[:, 1:] + dz[:, :1] / (dz.shape[1] - 1)
    dx = d_tokens.transpose(0, 2, 1).reshape(shape)
    return dx, {name: grads[name] for name in NAMES}
