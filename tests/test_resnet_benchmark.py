"""benchmarks/resnet18.py runs end to end at a tiny size, and the two trainings (torch.nn's
pools, ndpool.torch.nn's) give the same losses; no timing is asserted."""
import importlib.util
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "resnet18.py"
TINY = ["--steps", "2", "--batch", "2", "--image", "40", "--width", "8", "--classes", "5",
        "--threads", "1"]


def load():
    spec = importlib.util.spec_from_file_location("resnet18_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("layout", [[], ["--channels-last"]])
def test_the_two_trainings_give_the_same_losses(layout, capsys):
    bench = load()
    (threads, (theirs, ours, control)), = bench.main(TINY + layout)
    assert threads == 1 and ours.name == "ndpool.torch.nn" and theirs.name == "torch.nn"
    assert control.name == "control"
    assert len(ours.losses) == len(theirs.losses) == len(control.losses) == 2
    assert ours.losses[0] != ours.losses[1]          # it trained: the weights changed
    torch.testing.assert_close(torch.tensor(ours.losses), torch.tensor(theirs.losses),
                               rtol=1e-5, atol=1e-6)
    # the stem's max pool and the head's average pool were timed, both passes
    assert all(seconds > 0 for seconds in ours.pool_seconds + theirs.pool_seconds)
    torch.testing.assert_close(torch.tensor(control.losses), torch.tensor(theirs.losses),
                               rtol=1e-5, atol=1e-6)
    out = capsys.readouterr().out
    assert "| 1 | ndpool.torch.nn |" in out and "losses, torch.nn, 1 thread(s)" in out


def test_the_network_is_resnet18_shaped():
    bench = load()
    model = bench.ResNet18(torch.nn)
    assert sum(p.numel() for p in model.parameters()) == 11_689_512   # torchvision's count
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 1000)
    import ndpool.torch.nn as ndnn
    ours = bench.ResNet18(ndnn, 10, 8)
    assert isinstance(ours.maxpool, ndnn.MaxPool2d)
    assert isinstance(ours.avgpool, ndnn.AdaptiveAvgPool2d)


def test_write_section_replaces_its_own_section(tmp_path):
    from ndpool.bench import sections, write_section
    path = tmp_path / "RESULTS.md"
    path.write_text("# results\n\ntable\n")
    write_section(path, "resnet18", "ResNet-18", ["first"])
    write_section(path, "resnet18", "ResNet-18", ["second"])
    text = path.read_text()
    assert text.startswith("# results\n\ntable\n") and "first" not in text
    assert len(sections(text)) == 1 and "## ResNet-18\n\nsecond\n" in sections(text)[0]
