"""`ndpool demo` where matplotlib cannot be imported: the terminal example, then one line
with the install hint, and a non-zero exit code (no traceback)."""
import os
import subprocess
import sys

import ndpool


def test_demo_without_matplotlib_ends_with_the_install_hint(tmp_path):
    shim = tmp_path / "shim" / "matplotlib"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text('raise ImportError("matplotlib is not installed")\n')
    source = os.path.dirname(os.path.dirname(ndpool.__file__))   # this ndpool, not another
    path = os.pathsep.join(filter(None, [str(shim.parent), source,
                                         os.environ.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-m", "ndpool.cli", "demo", "--out", str(tmp_path)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env={**os.environ, "PYTHONPATH": path}, timeout=120)
    lines = done.stdout.strip().splitlines()
    assert done.returncode != 0
    assert "max_pool2d(x, 2)" in done.stdout                   # the terminal example ran
    assert lines[-1] == ('ndpool demo: the pictures need matplotlib and Pillow: '
                         'pip install "ndpool[plot]"')
    assert "Traceback" not in done.stdout
    assert not list(tmp_path.glob("*.png"))
