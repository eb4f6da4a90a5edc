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
              help="nc codec(s) to measure; CODEC:MODEL pins a model (e.g. idf:idf-v2).")
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


@main.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--no-nc", is_flag=True, help="Only the classic codecs.")
@click.option("--no-reference", is_flag=True, help="Only nc.")
@click.option("--reference", "references", multiple=True,
              type=click.Choice(["JPEG", "WebP", "JPEG XL", "AVIF", "JPEG 2000"]),
              help="Only these classic codecs (repeatable) [default: all; JPEG is always "
                   "measured when any is, as the BD-rate anchor].")
@click.option("--limit", type=int, help="Only the first N images.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the figures here [default: bench/results/lossy-FOLDER.json].")
@click.option("--plot", "plot_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the RD plot here [default: bench/results/lossy-FOLDER.png].")
@click.option("--model", "models", multiple=True,
              help="Lossy weights to measure (repeat to compare several) [default: the codec's].")
def lossy(folder, no_nc, no_reference, references, limit, json_out, plot_out, models):
    """Rate-distortion (PSNR, MS-SSIM) and BD-rate against JPEG on every PNG in FOLDER."""
    from .lossy import run

    if no_reference and references:
        raise click.UsageError("--no-reference and --reference exclude each other")
    results = Path(__file__).parent / "results"
    chosen = () if no_reference else (set(references) | {"JPEG"} if references else None)
    run(folder, not no_nc, chosen, limit,
        json_out or results / f"lossy-{folder.name}.json",
        plot_out or results / f"lossy-{folder.name}.png", models)


@main.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The training photographs [default: ../shared/data/train].")
@click.option("--width", type=int, default=768, show_default=True)
@click.option("--height", type=int, default=512, show_default=True)
@click.option("--downscale", type=click.FloatRange(min=1), default=1.0, show_default=True,
              help="Make the photographs this many times smaller (Lanczos) before cropping: "
                   "at 2 they have about Kodak's detail per pixel.")
def heldout(out, data, width, height, downscale):
    """Write centre crops of the held-out training photographs to OUT, as PNG.

    Models are chosen on these (never on Kodak): `python -m bench heldout
    /tmp/held`, then e.g. `python -m bench lossy /tmp/held --no-reference
    --model CANDIDATE` beside the shipped model."""
    from .heldout import write_crops

    for path in write_crops(out, data, width, height, downscale):
        click.echo(path)


@main.command("batch")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-j", "--jobs", type=click.IntRange(min=1),
              help="Files at once, and a single file's cores [default: all cores].")
@click.option("--codec", "codec_name", default="arm", show_default=True,
              help="The lossless codec to run (idf is the cheaper one).")
@click.option("--limit", type=int, help="Only the first N images.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the figures here [default: bench/results/batch-FOLDER.json].")
def batch_(folder, jobs, codec_name, limit, json_out):
    """Batch encode+decode of the PNGs in FOLDER (nc's process pool) against the
    sum of single-file times; checks exactness and prints the ratio."""
    from .batch import run

    json_out = json_out or Path(__file__).parent / "results" / f"batch-{folder.name}.json"
    run(folder, jobs, codec_name, limit, json_out)
