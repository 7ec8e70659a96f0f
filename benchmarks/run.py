"""Run the ndpool benchmark: ``python benchmarks/run.py [args]`` is ``ndpool bench [args]``.

The results go to benchmarks/RESULTS.md beside this script unless ``--output`` says
otherwise; ``python benchmarks/run.py --help`` lists the options.
"""
import sys
from pathlib import Path

from ndpool import bench

if __name__ == "__main__":
    sys.exit(bench.main(prog="python benchmarks/run.py",
                        output=Path(__file__).resolve().parent / "RESULTS.md"))
