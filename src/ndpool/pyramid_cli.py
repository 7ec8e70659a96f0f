"""Write a multiscale OME-NGFF pyramid of a zarr array or a .npy file.

Each level halves (``--factor``) the spatial axes of the one before with a block
reduction (``--op``), streaming chunk by chunk; rerunning a job that was cut short
completes it.
"""
from __future__ import annotations

import argparse

from .coarsening import OPS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="INPUT", help="a zarr array (or NGFF image) path, or a .npy file")
    parser.add_argument("output", metavar="OUTPUT", help="the zarr store to write")
    parser.add_argument("--levels", type=int, default=None,
                        help="number of levels, the input included (default: until an axis "
                             "would fall below --min-size)")
    parser.add_argument("--min-size", type=int, default=64, help="smallest coarsened axis (64)")
    parser.add_argument("--op", choices=OPS, default="mean", help="block reduction (mean)")
    parser.add_argument("--factor", type=int, default=2, help="factor per spatial axis and level (2)")
    parser.add_argument("--chunks", type=int, default=None, help="chunk side of every level")
    parser.add_argument("--ngff", choices=("0.5", "0.4"), default="0.5",
                        help="OME-NGFF version: 0.5 on zarr v3 (default), 0.4 on zarr v2")
    parser.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from .pyramids import pyramid
    pyramid(args.input, args.output, levels=args.levels, min_size=args.min_size,
            factors=args.factor, op=args.op, chunks=args.chunks, ngff=args.ngff,
            progress=not args.quiet, overwrite=args.overwrite)
    return 0
