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
@click.option("--process-images", type=click.IntRange(min=0), default=2, show_default=True,
              help="Time whole nc decode processes (start-up included) on this many images.")
@click.option("--effort", "efforts", multiple=True, type=click.IntRange(1, 9),
              help="nc's encode effort (repeat to compare several, each its own row) "
                   "[default: nc's default].")
@click.option("--timing-repeats", type=click.IntRange(1, 20), default=1, show_default=True,
              help="Time nc's decodes (in-process and whole processes) and the classic "
                   "codecs' encodes and decodes this many times each and keep the least: "
                   "steadier ratios on a shared host.  nc's encode runs once.")
def lossless(folder, codecs, no_reference, limit, json_out, per_image, process_images, efforts,
             timing_repeats):
    """Lossless bpp, bpsp and speed on every PNG in FOLDER, through real files."""
    from .lossless import run

    json_out = json_out or Path(__file__).parent / "results" / f"lossless-{folder.name}.json"
    run(folder, list(codecs), not no_reference, limit, json_out, per_image, process_images,
        tuple(efforts), timing_repeats)


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
@click.option("--effort", "efforts", multiple=True, type=click.IntRange(1, 9),
              help="nc's encode effort (repeat to compare several, each its own curve) "
                   "[default: the codec's].")
@click.option("--every", type=click.IntRange(min=1), default=1, show_default=True,
              help="Only every Nth image (1st, N+1th, ...), after --limit.")
@click.option("--process-images", type=click.IntRange(min=0), default=2, show_default=True,
              help="Time whole nc encode/decode processes on this many images, every quality.")
def lossy(folder, no_nc, no_reference, references, limit, json_out, plot_out, models, efforts,
          every, process_images):
    """Rate-distortion (PSNR, MS-SSIM) and BD-rate against JPEG on every PNG in FOLDER."""
    from .lossy import run

    if no_reference and references:
        raise click.UsageError("--no-reference and --reference exclude each other")
    results = Path(__file__).parent / "results"
    chosen = () if no_reference else (set(references) | {"JPEG"} if references else None)
    run(folder, not no_nc, chosen, limit,
        json_out or results / f"lossy-{folder.name}.json",
        plot_out or results / f"lossy-{folder.name}.png", models, efforts, every, process_images)


@main.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The training photographs [default: $NC_SHARED_DIR/data/train, else ../shared/data/train].")
@click.option("--width", type=int, default=768, show_default=True)
@click.option("--height", type=int, default=512, show_default=True)
@click.option("--downscale", type=click.FloatRange(min=1), default=1.0, show_default=True,
              help="Make the photographs this many times smaller (Lanczos) before cropping: "
                   "at 2 they have about Kodak's detail per pixel.")
@click.option("--photos", metavar="DIR|none",
              help="The further photographs, whose every 10th is held out too "
                   "[default: $NC_SHARED_DIR/data/photos, else ../shared/data/photos, if it "
                   "exists; 'none': the training folder's alone].")
def heldout(out, data, width, height, downscale, photos):
    """Write centre crops of the held-out training photographs to OUT, as PNG.

    Models are chosen on these (never on Kodak): `python -m bench heldout
    /tmp/held`, then e.g. `python -m bench lossy /tmp/held --no-reference
    --model CANDIDATE` beside the shipped model."""
    from .heldout import write_crops

    from models.data import DEFAULT_PHOTOS_DIR
    from models.training import photos_folder

    if photos is None:
        photos = DEFAULT_PHOTOS_DIR if DEFAULT_PHOTOS_DIR.is_dir() else None
    else:
        photos = photos_folder(photos)
    for path in write_crops(out, data, width, height, downscale, photos):
        click.echo(path)


@main.command()
@click.option("--what", type=click.Choice(["all", "tiling", "memory", "oom"]), default="all",
              show_default=True, help="Tiling cost and seams, memory and speed, running out of "
                                      "memory, or all.")
@click.option("--codec", "codecs", multiple=True, default=["arm", "idf", "lossy"],
              show_default=True, help="Codecs to measure.")
@click.option("-j", "--jobs", type=click.IntRange(min=0), default=0, show_default=True,
              help="Processes per encode or decode (0: all cores).")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path),
              default=Path(__file__).parent / "results" / "large", show_default=True,
              help="Folder for the mosaics and the coded files.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the figures here [default: WORK/large.json].")
def large(what, codecs, jobs, work, json_out):
    """Large images: peak memory per process, time per subpixel against a
    Kodak image, what 1024-pixel tiles cost in size, and lossy seams."""
    from .large import run

    run(what, work, jobs, list(codecs), json_out or work / "large.json")


@main.command()
@click.option("--codec", "codecs", multiple=True, type=click.Choice(["arm", "idf", "lossy"]),
              help="Codec(s) to fuzz (repeatable) [default: all].")
@click.option("--count", type=click.IntRange(min=1), default=300, show_default=True,
              help="Mutated files per codec.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Run seed: the same seed gives the same mutations.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Seconds one decode may take before it counts as a hang and is killed.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes decoding side by side.")
@click.option("--kind", "kinds", multiple=True,
              type=click.Choice(["truncate", "bitflip", "byte-edit", "header", "table", "splice",
                                 "deep", "deep-header"]),
              help="Only these kinds of mutation (repeatable) [default: all, in turn].")
@click.option("--case", "cases", multiple=True, metavar="CODEC:INDEX",
              help="Redo only these cases of the run with the same --seed and --kind (repeatable), e.g. arm:12.")
@click.option("--memory-limit", type=click.FloatRange(min=0), default=4.0, show_default=True,
              help="Address-space cap of each worker in GiB (0: none).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the report here [default: bench/results/fuzz-SEED.json].")
@click.option("--save-failures", type=click.Path(file_okay=False, path_type=Path),
              help="Write each failing file (and what happened, as JSON) to this folder.")
@click.option("--show", type=click.IntRange(min=0), default=10, show_default=True,
              help="Print this many failing cases.")
def fuzz(codecs, count, seed, timeout, jobs, kinds, cases, memory_limit, json_out, save_failures, show):
    """Mutation fuzzing of the container parser and every codec's decoder.

    Encodes small crops of docs/sample.png with each codec, damages them
    (truncation, bit flips, byte edits, header edits and segment-table games
    with their CRCs recomputed, splices, payload edits with every CRC
    recomputed) and decodes each through the library API in worker processes.
    Counts per codec and kind: rejected, traceback, crash, hang, accepted
    correct or corrupted, partial output. Exit status 1 if any failed."""
    from .fuzz import CODECS, run
    from .fuzz_mutations import KINDS

    json_out = json_out or Path(__file__).parent / "results" / f"fuzz-{seed}.json"
    try:
        report = run(codecs or CODECS, count, seed, timeout, jobs, kinds or KINDS, cases, save_failures,
                     json_out, show, memory_limit or None, echo=click.echo)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    if report["failures"]:
        raise SystemExit(1)


@main.command("idf-width")
@click.option("--width", "widths", multiple=True, type=click.IntRange(min=1), default=[32, 48, 64, 96],
              show_default=True, help="Coupling widths to time (repeatable).")
@click.option("--partitions", "layouts", multiple=True, type=click.Choice(["2", "4"]),
              default=["2", "4"], show_default=True, help="Coupling layouts (2: bipartite, 4: quadripartite).")
@click.option("--size", nargs=2, type=click.IntRange(min=16), default=(768, 512), show_default=True,
              help="Image width and height (multiples of 16).")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True)
def idf_width(widths, layouts, size, repeats):
    """What the IDF's coupling width costs a decode: its exact flow and priors
    in float32 and float64, per width and layout, random weights."""
    from .idf_width import run

    run(widths, [int(p) for p in layouts], size[0], size[1], repeats)


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
