"""The ``ndpool`` command: ``demo`` (pictures), ``bench`` (speed), ``pyramid`` (multiscale zarr)."""
from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from . import bench, demo, pyramid_cli   # each owns its arguments

    parser = argparse.ArgumentParser(prog="ndpool", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, module in (("demo", demo), ("bench", bench), ("pyramid", pyramid_cli)):
        sub = commands.add_parser(name, help=module.__doc__.splitlines()[0],
                                  description=module.__doc__)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
