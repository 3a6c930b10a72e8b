"""The command line's data-format flags, shared by every subcommand that reads telemetry."""

from __future__ import annotations

import argparse

from resource_prediction.schema import FORMATS


def add_format_flags(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--format``, ``--input-size``, ``--sacct-fields`` and ``--delimiter``."""
    p.add_argument("--format", dest="data_format", choices=("auto", *FORMATS), default="auto",
                   help="telemetry format of --data (default: detected from the header)")
    p.add_argument("--input-size", choices=("rchar",),
                   help="Nextflow: use rchar (bytes read, measured during the task) as the input size")
    p.add_argument("--sacct-fields", metavar="F1,F2,...",
                   help="Slurm: the field order of a headerless sacct export (as given to --format)")
    p.add_argument("--delimiter", help="Slurm: the field delimiter (default: detected)")


def format_options(args: argparse.Namespace) -> dict:
    """Keyword arguments of :func:`~resource_prediction.data.load_telemetry` from the flags."""
    return {
        "format": getattr(args, "data_format", "auto") or "auto",
        "input_size": getattr(args, "input_size", None),
        "fields": getattr(args, "sacct_fields", None),
        "delimiter": getattr(args, "delimiter", None),
    }
