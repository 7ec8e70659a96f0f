"""examples/digits_cnn.py: its gradients match finite differences, and training lowers the loss."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

import ndpool

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "digits_cnn.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("digits_cnn", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_problem(example, pool="max"):
    """A float64 net with few channels and two random images: every entry can be checked.

    Random normal inputs make the pooled activations distinct (no ties), so max pooling
    is differentiable at the point checked. Stochastic pooling draws from a seed, not a
    generator, so that every forward pass draws the same cells.
    """
    rng = np.random.default_rng(1)
    model = example.DigitsCNN(channels=(2, 3), seed=3, dtype=np.float64, pool=pool)
    for layer in model.layers:
        if "rng" in getattr(layer, "arguments", {}):
            layer.arguments["rng"] = 5
    x = rng.standard_normal((2, 1, 8, 8))
    labels = np.array([3, 7])
    return model, x, labels


def numerical_gradient(f, array, eps=1e-6):
    grad = np.zeros_like(array)
    for i in np.ndindex(array.shape):
        saved = array[i]
        array[i] = saved + eps
        upper = f()
        array[i] = saved - eps
        lower = f()
        array[i] = saved
        grad[i] = (upper - lower) / (2 * eps)
    return grad


def pools():
    spec = importlib.util.spec_from_file_location("digits_cnn", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.POOLS)


@pytest.mark.parametrize("pool", pools())
def test_gradients_match_central_differences(example, pool):
    model, x, labels = tiny_problem(example, pool)
    _, dx = model.loss(x, labels)
    loss_only = lambda: example.softmax_cross_entropy(model.forward(x), labels)[0]
    checked = 0
    for layer, name in model.parameters():
        analytic = layer.grads[name].copy()
        numeric = numerical_gradient(loss_only, layer.trainable[name])
        np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8,
                                   err_msg=f"{type(layer).__name__}.{name}")
        checked += 1
    # two convolutions and the linear layer, weight and bias each (and the pools' own)
    assert checked == 6 + sum(len(getattr(layer, "trainable", ())) for layer in
                              model.layers[2::3][:2])
    np.testing.assert_allclose(dx, numerical_gradient(loss_only, x), rtol=1e-5, atol=1e-8,
                               err_msg="input")


def test_a_few_steps_reduce_the_loss(example):
    x_train, _, y_train, _ = example.load_digits_split(seed=0)
    x, labels = x_train[:64], y_train[:64]
    model = example.DigitsCNN(seed=0)
    optimiser = example.Adam(model, lr=3e-3)
    first, _ = model.loss(x, labels)
    for _ in range(10):
        model.loss(x, labels)
        optimiser.step()
    last, _ = model.loss(x, labels)
    assert last < 0.7 * first


def test_pool_choices(example):
    assert set(example.POOLS) == {"max", "avg", "soft", "stochastic", "blur", "attention"}
    assert example.CHOICES == tuple(example.POOLS)
    with pytest.raises(ValueError, match="pool='median' is not available: choose one of max"):
        example.DigitsCNN(pool="median")


def test_stochastic_pooling_predicts_with_its_mean(example):
    """predict() runs the stochastic layers in evaluation mode (deterministic), and
    training resumes in training mode afterwards."""
    x = np.random.default_rng(2).standard_normal((5, 1, 8, 8)).astype(np.float32)
    model = example.DigitsCNN(pool="stochastic")
    np.testing.assert_array_equal(model.predict(x), model.predict(x))
    assert all(layer.training for layer in model.layers if hasattr(layer, "training"))
    pools = [layer for layer in model.layers if isinstance(layer, ndpool.nn.StochasticPool2d)]
    assert len(pools) == 2


def test_one_epoch_from_the_command_line(example, capsys):
    assert example.main(["--pool", "blur", "--epochs", "1"]) == 0
    assert "--pool blur: test accuracy:" in capsys.readouterr().out
