"""The hand-written SIMD kernels against a scalar reference at every level, through
scripts/check_simd.sh: the x86-64 levels this CPU runs natively, AArch64 (baseline and
NEON) under qemu. CI (CI=true) must check NEON; a machine without the cross compiler
and qemu checks the rest and then skips, saying so. Needs no build of ndpool."""
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "check_simd.sh"
IN_CI = os.environ.get("CI") == "true"
NEON_LEVELS = ["aarch64/baseline", "aarch64/neon"]

# the /proc/cpuinfo flags of x86-64-v3 and -v4, as the script reads them
X86_LEVELS = {
    "x86-64/baseline": set(),
    "x86-64/avx2": {"avx2", "avx", "fma", "bmi1", "bmi2", "f16c", "movbe", "abm"},
    "x86-64/avx512": {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"},
}


def cpu_flags():
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return set()
    return next((set(line.split(":", 1)[1].split()) for line in lines if line.startswith("flags")), set())


def levels_this_cpu_runs():
    if platform.machine() != "x86_64":
        return []
    flags = cpu_flags()
    return [level for level, needs in X86_LEVELS.items() if needs <= flags]


@pytest.mark.skipif(not IN_CI and shutil.which(os.environ.get("CXX", "g++")) is None,
                    reason="no C++ compiler to build tests/simd/check_kernels.cpp with")
def test_every_simd_level_matches_the_scalar_reference():
    command = ["bash", str(SCRIPT)] + (["--require-neon"] if IN_CI else [])
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    shown = f"$ {' '.join(command)}\n{result.stdout}{result.stderr}"
    assert result.returncode == 0, shown
    ran = set(re.findall(r"^check_simd: (\S+) \(.*\): \d+ passed, 0 failed$", result.stdout, re.M))
    missing = [level for level in levels_this_cpu_runs() if level not in ran]
    assert not missing, f"the script did not pass {missing}, which this CPU runs:\n{shown}"
    if IN_CI:
        assert set(NEON_LEVELS) <= ran, f"CI must check the NEON kernels under qemu:\n{shown}"
    elif not set(NEON_LEVELS) <= ran:
        why = re.search(r"^check_simd: aarch64/neon not checked: (.*)$", result.stdout, re.M)
        pytest.skip(f"the x86-64 levels passed ({', '.join(sorted(ran))}); NEON was not checked: "
                    f"{why.group(1) if why else 'see scripts/check_simd.sh'}")
