"""What every benchmark script shares: its ``--quick`` and ``--out`` options."""

from __future__ import annotations

import argparse
from pathlib import Path

from lenet_core.records import RECORDS_DIR


def parse_args(parser: argparse.ArgumentParser, argv, record: str, quick_help: str) -> argparse.Namespace:
    """Add ``--quick`` and ``--out`` to ``parser`` and parse ``argv``. ``args.out`` is the record's
    path (``results/<record>`` by default); a ``--quick`` run without ``--out`` is refused, since a
    quick record must never land in ``results/``."""
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--out", type=Path, default=None,
                        help=f"the record to write (default results/{record}; --quick needs another)")
    args = parser.parse_args(argv)
    if args.quick and args.out is None:
        parser.error("--quick runs write to a temporary --out, never to results/")
    args.out = args.out or RECORDS_DIR / record
    return args
