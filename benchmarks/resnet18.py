"""ResNet-18 trained on the CPU twice, once with torch.nn's pooling and once with
ndpool.torch.nn's (the stem's MaxPool2d(3, 2, 1) and the head's AdaptiveAvgPool2d(1)),
from the same seed: the same weights, the same random batches, the same optimiser.

    python benchmarks/resnet18.py                         # batch 16, 224², threads 1 and 2
    python benchmarks/resnet18.py --batch 8 --image 112 --threads 1 --channels-last
    python benchmarks/resnet18.py --write                 # also into benchmarks/RESULTS.md

The network is torchvision's resnet18 written out in plain PyTorch (torchvision does not
install beside the CPU torch here): 7×7 stride-2 convolution, batch norm, ReLU, max pool
k3 s2 p1, four stages of two basic residual blocks (64, 128, 256, 512 channels, the last
three starting with stride 2), adaptive average pool to 1×1, linear. Steps of the two
runs alternate (so that other work on the machine slows both alike); each step is
forward, cross-entropy loss, backward and an SGD update. The pooling modules are timed
by hooks, forward (pre-hook to hook) and backward (backward pre-hook to backward hook).

Prints the loss sequences, their largest absolute and relative difference (float32
rounding: the pools agree with torch's to the bit for max, forward and backward, and to
rounding for the average; the rest of the network is the same code), the median step
time of each run and the pooling modules' share of it.

Training amplifies any rounding difference: after a few steps the runs drift apart (in
a net with batch norm, on random labels, by a few parts in a thousand of the loss over
20 steps at 224²), as any two float32 formulations of the same network do. A third
run, the control, shows how much: torch.nn's max pool with torch's own ``avg_pool2d``
over the whole plane in place of ``AdaptiveAvgPool2d(1)``, two of torch's kernels for
the same average that differ only in the order of their sums.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence

import torch
from torch import nn

import ndpool
import ndpool.torch.nn as ndnn
from ndpool.bench import cpu_name, write_section

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


# ------------------------------------------------------------------ the network
class BasicBlock(nn.Module):
    """Two 3×3 convolutions with batch norm and a residual connection (a 1×1
    convolution on it where the stride or the width changes)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet-18 with the pooling modules of ``pools`` (``torch.nn`` or
    ``ndpool.torch.nn``); ``width`` is the stem's channels (64 in the paper)."""

    def __init__(self, pools, classes: int = 1000, width: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = pools.MaxPool2d(3, stride=2, padding=1)
        stages, cin = [], width
        for i, stride in enumerate((1, 2, 2, 2)):
            cout = width * 2 ** i
            stages.append(nn.Sequential(BasicBlock(cin, cout, stride),
                                        BasicBlock(cout, cout, 1)))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = pools.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class WholePlaneAvgPool2d(nn.Module):
    """torch's other average kernel, ``avg_pool2d`` over the whole plane: the same
    values as ``AdaptiveAvgPool2d(1)`` up to float32 rounding (the sums run in another
    order). The control run uses it to show what a rounding difference alone becomes
    after some steps of training."""

    def __init__(self, output_size):
        super().__init__()
        if output_size not in (1, (1, 1)):
            raise ValueError("WholePlaneAvgPool2d: output_size must be 1")

    def forward(self, x):
        return nn.functional.avg_pool2d(x, tuple(x.shape[-2:]))


#: the control's pools: torch.nn's max pool, and torch's other average kernel
CONTROL = argparse.Namespace(MaxPool2d=nn.MaxPool2d, AdaptiveAvgPool2d=WholePlaneAvgPool2d)


# ------------------------------------------------------------- timing the pools
class PoolClock:
    """Seconds spent in the pooling modules, forward and backward, per step."""

    def __init__(self, modules):
        self.seconds = 0.0
        self._start = {}
        for module in modules:
            module.register_forward_pre_hook(self._begin)
            module.register_forward_hook(self._end)
            module.register_full_backward_pre_hook(self._begin_backward)
            module.register_full_backward_hook(self._end_backward)

    def _begin(self, module, args):
        self._start[id(module)] = time.perf_counter()

    def _end(self, module, args, output):
        self.seconds += time.perf_counter() - self._start.pop(id(module))

    def _begin_backward(self, module, grad_output):
        self._start[id(module)] = time.perf_counter()

    def _end_backward(self, module, grad_input, grad_output):
        self.seconds += time.perf_counter() - self._start.pop(id(module))

    def lap(self) -> float:
        seconds, self.seconds = self.seconds, 0.0
        return seconds


@dataclass
class Run:
    """One training run: its model, optimiser, pool clock and what it measured."""

    name: str
    model: nn.Module
    optimizer: torch.optim.Optimizer
    clock: PoolClock
    losses: List[float] = field(default_factory=list)
    step_seconds: List[float] = field(default_factory=list)
    pool_seconds: List[float] = field(default_factory=list)

    def step(self, x, labels):
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(self.model(x), labels)
        loss.backward()
        self.optimizer.step()
        self.step_seconds.append(time.perf_counter() - start)
        self.pool_seconds.append(self.clock.lap())
        self.losses.append(loss.item())

    @property
    def median_step(self) -> float:
        return statistics.median(self.step_seconds)

    @property
    def pool_share(self) -> float:
        """The pools' part of the step: median pool time over median step time."""
        return statistics.median(self.pool_seconds) / self.median_step


def make_run(name: str, pools, state: dict, args) -> Run:
    model = ResNet18(pools, args.classes, args.width)
    model.load_state_dict(state)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    return Run(name, model, optimizer, PoolClock([model.maxpool, model.avgpool]))


def train(args, threads: int):
    """Both runs at ``threads`` threads (torch's and ndpool's), steps alternating."""
    torch.set_num_threads(threads)
    ndpool.set_num_threads(threads)
    torch.manual_seed(args.seed)
    state = {k: v.clone() for k, v in ResNet18(nn, args.classes, args.width).state_dict().items()}
    runs = [make_run("torch.nn", nn, state, args), make_run("ndpool.torch.nn", ndnn, state, args)]
    if args.control:
        runs.append(make_run("control", CONTROL, state, args))
    data = torch.Generator().manual_seed(args.seed + 1)
    form = torch.channels_last if args.channels_last else torch.contiguous_format
    for step in range(args.steps):
        x = torch.randn(args.batch, 3, args.image, args.image, generator=data)
        x = x.contiguous(memory_format=form)
        labels = torch.randint(0, args.classes, (args.batch,), generator=data)
        for run in runs:
            run.step(x, labels)
        print(f"{threads} thread(s), step {step + 1}/{args.steps}: "
              + ", ".join(f"{run.name} {run.step_seconds[-1]:.2f} s" for run in runs),
              file=sys.stderr, flush=True)
    return runs


def equal_steps(a: Sequence[float], b: Sequence[float]) -> int:
    """How many steps, from the first, the two runs' losses are equal to the bit."""
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def differences(a: Sequence[float], b: Sequence[float]):
    """Largest absolute and relative difference of two loss sequences."""
    absolute = max(abs(x - y) for x, y in zip(a, b))
    relative = max(abs(x - y) / max(abs(x), abs(y), 1e-30) for x, y in zip(a, b))
    return absolute, relative


# ------------------------------------------------------------------- reporting
NOTES = (
    "median step: one training step (forward, loss, backward, SGD update), median over "
    "the steps (the first included: it warms up). pool ms per step: the two pooling "
    "modules, forward and backward, timed by hooks, median over the steps; pool share = "
    "that / median step. The control is torch.nn's max pool with torch's avg_pool2d over "
    "the whole plane for the head: its drift from torch.nn is what a float32 rounding "
    "difference alone becomes in these steps.")


def report_lines(args, results) -> List[str]:
    """Markdown: the setup, one row per thread count, and the loss sequences."""
    form = "channels_last" if args.channels_last else "channels_first"
    lines = [f"- CPU: {cpu_name()}, `os.cpu_count()` = {os.cpu_count()}; "
             f"PyTorch {torch.__version__}, ndpool {ndpool.__version__}",
             f"- batch {args.batch}, {args.image}×{args.image} images, {args.steps} steps, "
             f"{form}, width {args.width}, {args.classes} classes, seed {args.seed}; "
             f"SGD lr 0.01 momentum 0.9",
             f"- load average at the end: {os.getloadavg()[0]:.2f} "
             f"(other work on the machine slows the runs alike: their steps alternate)",
             "",
             "| threads | pooling | median step s | pool ms per step | pool share "
             "| step vs torch.nn | losses equal to torch.nn's for | max abs loss diff "
             "| max rel loss diff |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for threads, runs in results:
        base = runs[0]
        for run in runs:
            cells = ["", "", ""]
            if run is not base:
                absolute, relative = differences(base.losses, run.losses)
                cells = [f"{equal_steps(base.losses, run.losses)} steps", f"{absolute:.2e}",
                         f"{relative:.2e}"]
            lines.append(
                f"| {threads} | {run.name} | {run.median_step:.3f} | "
                f"{statistics.median(run.pool_seconds) * 1e3:.1f} | {run.pool_share:.1%} | "
                f"{run.median_step / base.median_step:.3f} | " + " | ".join(cells) + " |")
    lines += ["", NOTES]
    for threads, runs in results[1:]:   # torch.nn against itself at another thread count
        absolute, relative = differences(results[0][1][0].losses, runs[0].losses)
        lines.append("")
        lines.append(f"torch.nn at {threads} threads against torch.nn at {results[0][0]}: "
                     f"losses equal for {equal_steps(results[0][1][0].losses, runs[0].losses)}"
                     f" steps, max abs difference {absolute:.2e}, max rel {relative:.2e} (its "
                     f"convolutions sum in another order).")
    lines.append("")
    for threads, runs in results:
        for run in runs:
            lines.append(f"- losses, {run.name}, {threads} thread(s): "
                         + ", ".join(f"{loss:.7f}" for loss in run.losses))
    return lines


def parse(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python benchmarks/resnet18.py",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--image", type=int, default=224, help="image height and width")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--channels-last", action="store_true",
                        help="model and input in torch.channels_last")
    parser.add_argument("--width", type=int, default=64, help="the stem's channels")
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-control", dest="control", action="store_false",
                        help="leave out the control run (torch.nn's max pool, torch's "
                        "avg_pool2d over the whole plane)")
    parser.add_argument("--write", action="store_true",
                        help=f"write the results into {RESULTS.name} (its ResNet-18 section)")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None):
    """Run, print, optionally write; returns [(threads, [torch.nn run, ndpool run,
    control run (unless --no-control)])]."""
    args = parse(argv)
    results = []
    for threads in args.threads:
        results.append((threads, train(args, threads)))
        runs = results[-1][1]
        for run in runs:
            print(f"{threads} thread(s) {run.name:16s} median step {run.median_step:.3f} s, "
                  f"pools {run.pool_share:.1%} of it; losses "
                  + " ".join(f"{loss:.6f}" for loss in run.losses))
        for run in runs[1:]:
            absolute, relative = differences(runs[0].losses, run.losses)
            print(f"{threads} thread(s) {run.name} against torch.nn: losses equal for "
                  f"{equal_steps(runs[0].losses, run.losses)} steps, max abs difference "
                  f"{absolute:.3e}, max rel {relative:.3e}")
    lines = report_lines(args, results)
    command = " ".join(["python benchmarks/resnet18.py"] + list(sys.argv[1:] if argv is None
                                                                else argv))
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(RESULTS, "resnet18", "ResNet-18 training, torch.nn's pools or ndpool's",
                      [f"Command: `{command}` ([resnet18.py](resnet18.py)).", ""] + lines)
        print(f"wrote {RESULTS}", file=sys.stderr)
    return results


if __name__ == "__main__":
    main()
