"""A small convolutional network written from scratch in NumPy, pooled by ndpool.

It learns scikit-learn's bundled 8x8 handwritten digits (offline) and prints the test
accuracy. Every layer has ``forward(x)`` and ``backward(dy)``; the pooling layers come
from ``ndpool.nn`` (``MaxPool2d`` by default), the rest is written out here in a few
lines each:

    conv 3x3 (1 -> 16) -> ReLU -> pool 2 -> conv 3x3 (16 -> 32) -> ReLU -> pool 2
    -> flatten -> linear (128 -> 10) -> softmax cross-entropy, trained with Adam
    (cosine-decayed learning rate); about 0.98 test accuracy in a few seconds.

Run it with ``python examples/digits_cnn.py [--pool NAME]``; import it to reuse the
layers. ``--pool`` picks the pooling layer from ``POOLS``:

    max         ndpool.nn.MaxPool2d(2)
    avg         ndpool.nn.AvgPool2d(2)
    stochastic  ndpool.nn.StochasticPool2d(2): a cell drawn per window in training,
                the probability-weighted mean at test time (Zeiler & Fergus 2013)
    blur        ndpool.nn.MaxBlurPool2d(2): max with stride 1, then a [1, 2, 1] blur
                subsampled by 2 (Zhang 2019's replacement for max pooling)
    soft        ndpool.nn.SoftPool2d(2) (Stergiou et al. 2021)
    attention   ndpool.attention_pool2d with logits from a learned 1x1 convolution
                (LIP, Gao et al. 2019)

Measured (20 epochs, seed 0; the accuracies are reproducible, the times are from a
2-core machine shared with other jobs, load about 8, so read them relative to each other):

    --pool      test accuracy   wall     CPU
    max         0.983           82 s     34 s
    avg         0.972           72 s     32 s
    stochastic  0.986           87 s     37 s
    blur        0.989           77 s     37 s
    soft        0.983          184 s     43 s
    attention   0.975          694 s    140 s

(soft and attention were run later, niced, beside other jobs: their wall times are longer
than the load alone explains; the CPU column compares. The attention layer's learned 1x1
convolution and its two gradients make it the dearest.)
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import ndpool


# ---------------------------------------------------------------------- the layers
class Conv2d:
    """Stride-1 convolution with zero padding, as one matrix product over im2col columns."""

    def __init__(self, in_channels, out_channels, kernel_size=3, padding=1, *, rng,
                 dtype=np.float32):
        fan_in = in_channels * kernel_size * kernel_size
        # He initialisation keeps the ReLU activations' scale from layer to layer
        self.weight = (rng.standard_normal((out_channels, in_channels, kernel_size,
                                            kernel_size)) * np.sqrt(2 / fan_in)).astype(dtype)
        self.bias = np.zeros(out_channels, dtype)
        self.kernel_size, self.padding = kernel_size, padding
        self.trainable = {"weight": self.weight, "bias": self.bias}
        self.grads = {}

    def forward(self, x):
        n, c, h, w = x.shape
        k, p = self.kernel_size, self.padding
        padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(2, 3))
        out_h, out_w = windows.shape[2:4]
        # im2col: one row per output pixel, holding its (c, k, k) receptive field
        cols = windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * out_h * out_w, c * k * k)
        y = cols @ self.weight.reshape(len(self.weight), -1).T + self.bias
        self._cache = (x.shape, padded.shape, cols, out_h, out_w)
        return y.reshape(n, out_h, out_w, -1).transpose(0, 3, 1, 2)

    def backward(self, dy):
        x_shape, padded_shape, cols, out_h, out_w = self._cache
        n, c = x_shape[:2]
        k, p = self.kernel_size, self.padding
        dy_rows = dy.transpose(0, 2, 3, 1).reshape(-1, dy.shape[1])
        self.grads["weight"] = (dy_rows.T @ cols).reshape(self.weight.shape)
        self.grads["bias"] = dy_rows.sum(axis=0)
        dcols = (dy_rows @ self.weight.reshape(len(self.weight), -1)).reshape(
            n, out_h, out_w, c, k, k)
        # col2im: every tap of every window adds its share back where it was read
        dpadded = np.zeros(padded_shape, dy.dtype)
        for i in range(k):
            for j in range(k):
                dpadded[:, :, i:i + out_h, j:j + out_w] += dcols[..., i, j].transpose(0, 3, 1, 2)
        return dpadded[:, :, p:padded_shape[2] - p, p:padded_shape[3] - p]


class AttentionPool:
    """LIP (Gao et al. 2019): each 2x2 window's cells weighted by the softmax of logits
    that a learned 1x1 convolution makes from the input, through
    ``ndpool.attention_pool2d`` and its gradients for both ``x`` and ``logits``."""

    def __init__(self, channels, kernel_size=2, *, rng, dtype=np.float32):
        self.logits = Conv2d(channels, channels, kernel_size=1, padding=0, rng=rng,
                             dtype=dtype)
        self.kernel_size = kernel_size
        self.trainable, self.grads = self.logits.trainable, self.logits.grads

    def forward(self, x):
        logits = self.logits.forward(x)
        y, self._pullback = ndpool.vjp(ndpool.attention_pool2d, x, logits, self.kernel_size,
                                       wrt=("x", "logits"))
        return y

    def backward(self, dy):
        dx, dlogits = self._pullback(dy)
        return dx + self.logits.backward(dlogits)


class ReLU:
    def forward(self, x):
        self._positive = x > 0
        return np.where(self._positive, x, 0)

    def backward(self, dy):
        return np.where(self._positive, dy, 0)


class Flatten:
    def forward(self, x):
        self._shape = x.shape
        return x.reshape(len(x), -1)

    def backward(self, dy):
        return dy.reshape(self._shape)


class Linear:
    def __init__(self, in_features, out_features, *, rng, dtype=np.float32):
        bound = 1 / np.sqrt(in_features)
        self.weight = rng.uniform(-bound, bound, (out_features, in_features)).astype(dtype)
        self.bias = np.zeros(out_features, dtype)
        self.trainable = {"weight": self.weight, "bias": self.bias}
        self.grads = {}

    def forward(self, x):
        self._x = x
        return x @ self.weight.T + self.bias

    def backward(self, dy):
        self.grads["weight"] = dy.T @ self._x
        self.grads["bias"] = dy.sum(axis=0)
        return dy @ self.weight


def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy of ``softmax(logits)`` against integer ``labels``, and its gradient."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(len(labels))
    loss = -log_probs[rows, labels].mean()
    dlogits = np.exp(log_probs)
    dlogits[rows, labels] -= 1
    return loss, dlogits / len(labels)


# ----------------------------------------------------------------------- the network
#: --pool NAME -> make(channels, rng, dtype): a pooling layer that halves 8x8 and 4x4 maps
POOLS = {
    "max": lambda channels, rng, dtype: ndpool.nn.MaxPool2d(2),
    "avg": lambda channels, rng, dtype: ndpool.nn.AvgPool2d(2),
    "stochastic": lambda channels, rng, dtype: ndpool.nn.StochasticPool2d(
        2, rng=np.random.default_rng(rng.integers(2**32))),
    "blur": lambda channels, rng, dtype: ndpool.nn.MaxBlurPool2d(2),
    "soft": lambda channels, rng, dtype: ndpool.nn.SoftPool2d(2),
    "attention": lambda channels, rng, dtype: AttentionPool(channels, rng=rng, dtype=dtype),
}
#: the --pool choices
CHOICES = tuple(POOLS)


class DigitsCNN:
    """conv-ReLU-pool twice, then a linear layer, for (N, 1, 8, 8) images and 10 classes."""

    def __init__(self, channels=(16, 32), *, seed=0, dtype=np.float32, pool="max"):
        if pool not in POOLS:
            raise ValueError(f"pool={pool!r} is not available: choose one of {', '.join(POOLS)}")
        rng = np.random.default_rng(seed)
        first, second = channels
        make = POOLS[pool]
        self.layers = [Conv2d(1, first, rng=rng, dtype=dtype), ReLU(),
                       make(first, rng, dtype),
                       Conv2d(first, second, rng=rng, dtype=dtype), ReLU(),
                       make(second, rng, dtype),
                       Flatten(), Linear(second * 2 * 2, 10, rng=rng, dtype=dtype)]

    def train(self, mode=True):
        """Training or (``mode=False``) evaluation mode for the layers that have both."""
        for layer in self.layers:
            if hasattr(layer, "train"):
                layer.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dlogits):
        for layer in reversed(self.layers):
            dlogits = layer.backward(dlogits)
        return dlogits

    def parameters(self):
        """``(layer, name)`` of every trainable array, in a fixed order.

        (Trainable arrays live in ``trainable``, apart from the pooling layers' arguments;
        the attention pool's 1x1 convolution has its own.)
        """
        return [(layer, name) for layer in self.layers
                for name in getattr(layer, "trainable", {})]

    def loss(self, x, labels):
        """Forward, loss and backward: returns ``(loss, dx)`` and fills each layer's grads."""
        loss, dlogits = softmax_cross_entropy(self.forward(x), labels)
        return loss, self.backward(dlogits)

    def predict(self, x, batch_size=512):
        """Classes of ``x``, in evaluation mode (stochastic pooling takes its mean)."""
        self.eval()
        try:
            return np.concatenate([self.forward(x[i:i + batch_size]).argmax(axis=1)
                                   for i in range(0, len(x), batch_size)])
        finally:
            self.train()


class Adam:
    """Adam (Kingma & Ba 2015) updating the network's arrays in place."""

    def __init__(self, model, lr=3e-3, betas=(0.9, 0.999), eps=1e-8):
        self.model, self.lr, self.betas, self.eps, self.step_count = model, lr, betas, eps, 0
        self.moments = [(np.zeros_like(layer.trainable[name]), np.zeros_like(layer.trainable[name]))
                        for layer, name in model.parameters()]

    def step(self):
        self.step_count += 1
        beta1, beta2 = self.betas
        correction1 = 1 - beta1 ** self.step_count
        correction2 = 1 - beta2 ** self.step_count
        for (layer, name), (m, v) in zip(self.model.parameters(), self.moments):
            grad = layer.grads[name]
            m *= beta1
            m += (1 - beta1) * grad
            v *= beta2
            v += (1 - beta2) * grad * grad
            update = self.lr * (m / correction1) / (np.sqrt(v / correction2) + self.eps)
            layer.trainable[name] -= update.astype(layer.trainable[name].dtype)


# -------------------------------------------------------------------------- training
def load_digits_split(seed=0, dtype=np.float32):
    """The 1797 digits as (N, 1, 8, 8) in [0, 1], split 80 / 20 with every class in both."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(dtype)[:, None]
    return train_test_split(images, digits.target, test_size=0.2, random_state=seed,
                            stratify=digits.target)


def train(epochs=20, batch_size=32, lr=1e-2, seed=0, log=print, pool="max"):
    x_train, x_test, y_train, y_test = load_digits_split(seed)
    model = DigitsCNN(seed=seed, pool=pool)
    optimiser = Adam(model, lr=lr)
    rng = np.random.default_rng(seed)
    steps_per_epoch = -(-len(x_train) // batch_size)
    total_steps, step = epochs * steps_per_epoch, 0
    for epoch in range(epochs):
        order = rng.permutation(len(x_train))
        losses = []
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            loss, _ = model.loss(x_train[batch], y_train[batch])
            # cosine decay: big steps early, small ones to settle at the end
            optimiser.lr = lr * 0.5 * (1 + np.cos(np.pi * step / total_steps))
            optimiser.step()
            step += 1
            losses.append(loss)
        if log:
            log(f"epoch {epoch + 1:2d}: train loss {np.mean(losses):.4f}")
    accuracy = float((model.predict(x_test) == y_test).mean())
    return model, accuracy


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", choices=CHOICES, default="max",
                        help="the pooling layer (default: max)")
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args(argv)
    started, cpu = time.perf_counter(), time.process_time()
    _, test_accuracy = train(epochs=args.epochs, pool=args.pool)
    print(f"--pool {args.pool}: test accuracy: {test_accuracy:.3f}")
    print(f"({time.perf_counter() - started:.1f} s, {time.process_time() - cpu:.1f} s of CPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
