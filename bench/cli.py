"""Command line of the benchmarks."""
from __future__ import annotations

from pathlib import Path

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """Benchmarks of nc against PNG, WebP, JPEG XL, JPEG 2000 (and JPEG, AVIF for lossy)."""


@main.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--codec", "codecs", multiple=True, default=["arm"], show_default=True,
              help="nc codec(s) to measure.")
@click.option("--no-reference", is_flag=True, help="Skip the classic codecs.")
@click.option("--limit", type=int, help="Only the first N images.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the figures here [default: bench/results/lossless-FOLDER.json].")
@click.option("--per-image", is_flag=True, help="Print each image's bpp as it is measured.")
def lossless(folder, codecs, no_reference, limit, json_out, per_image):
    """Lossless bpp, bpsp and speed on every PNG in FOLDER, through real files."""
    from .lossless import run

    json_out = json_out or Path(__file__).parent / "results" / f"lossless-{folder.name}.json"
    run(folder, list(codecs), not no_reference, limit, json_out, per_image)
