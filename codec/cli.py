"""The ``nc`` command line: encode, decode, info.

Each command takes one file, many files, folders (``-r``) or ``-`` for
stdin; ``-o`` names a file, a folder (for many) or ``-`` for stdout.  Many
files run side by side on every core (``codec/batch.py``); one file that
fails is reported on one line and the others go on.

Every failure the user can cause (bad input, corrupt file, existing output)
ends as one ``error: …`` line on stderr and exit status 1; usage mistakes
exit 2 (click's convention).  Nothing is written unless a file's whole
operation succeeded.  When the output is stdout, nothing else goes there.
"""
from __future__ import annotations

import json
import os
import sys

import click

from codec import __version__, api, batch, files
from codec.errors import NcError
from codec.options import (
    DEFAULT_EFFORT,
    MAX_EFFORT,
    MIN_EFFORT,
    EncodeOptions,
    OptionConflict,
)


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def _guard(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except NcError as e:
        _fail(str(e))
    except MemoryError:
        _fail("out of memory")
    except RuntimeError as e:
        if "alloc" not in str(e):      # PyTorch's allocator failing is running out of memory
            raise
        _fail("out of memory")
    except KeyboardInterrupt:
        _fail("interrupted")
    except OSError as e:
        _fail(f"{e.filename or ''}: {e.strerror or e}".lstrip(": "))


def _plan(inputs, output, suffix, recursive, accept) -> list[batch.Task]:
    try:
        tasks = batch.plan(list(inputs), output, suffix, recursive=recursive, accept=accept)
    except batch.PlanError as e:
        raise click.UsageError(str(e)) from None
    if any(files.is_stdio(t.dst) for t in tasks) and sys.stdout.isatty():
        raise click.UsageError("refusing to write binary data to a terminal: "
                               "give -o FILE or redirect stdout")
    _guard(batch.make_folders, tasks)
    return tasks


def _progress_bar(tasks, verb: str, quiet: bool):
    """A bar on stderr, only on a terminal and without --quiet; a single
    file's bar appears only once it has taken a second."""
    from tqdm import tqdm

    shown = not quiet and sys.stderr.isatty()
    return tqdm(total=len(tasks), desc=verb, unit="file", file=sys.stderr, leave=False,
                disable=not shown, delay=0 if len(tasks) > 1 else 1.0,
                ncols=None if not shown or _terminal_columns() else 80)


def _terminal_columns() -> int:
    """stderr's width; 0 where the terminal does not say (tqdm would then draw nothing)."""
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError):
        return 0


def _run(tasks, work, verb: str, jobs, verbose: bool, quiet: bool, describe) -> None:
    """Run the tasks, report each failure (and with -v each success), end
    with a summary when there were several; exit 1 if any failed."""
    from tqdm import tqdm

    to_stdout = any(files.is_stdio(t.dst) for t in tasks)
    report = sys.stderr if to_stdout else sys.stdout

    def on_done(outcome: batch.Outcome) -> None:
        if not outcome.ok:
            tqdm.write(f"error: {outcome.error}", file=sys.stderr)
        elif verbose:
            tqdm.write(describe(outcome), file=report)

    bar = _progress_bar(tasks, verb, quiet)
    try:
        summary = batch.run(tasks, work, jobs, progress=None if bar.disable else bar,
                            on_done=on_done)
    except KeyboardInterrupt:
        bar.close()
        _fail("interrupted")
    bar.close()
    if len(tasks) > 1 and not quiet:
        click.echo(summary.line(verb), err=True)
    if summary.failed:
        sys.exit(1)


def _name(path: str) -> str:
    return "stdout" if files.is_stdio(path) else path


def _describe_encode(o: batch.Outcome) -> str:
    parts = [f"{_name(o.task.dst)}: {o.nc_bytes} bytes, {8 * o.nc_bytes / o.pixels:.4f} bpp"]
    if o.facts.get("quality") is not None:
        parts.append(f"quality {o.facts['quality']:.3f}")
    ideal = o.facts.get("ideal_bits")
    if ideal:
        parts.append(f"model's ideal {ideal / o.pixels:.4f} bpp, overhead "
                     f"{100 * (8 * o.nc_bytes / ideal - 1):+.3f} %")
    return ", ".join(parts) + f", {o.seconds:.2f} s"


def _describe_decode(o: batch.Outcome) -> str:
    f = o.facts
    return f"{_name(o.task.dst)}: {f['width']}x{f['height']} {f['mode']}, {o.seconds:.2f} s"


JOBS_HELP = ("Files coded at once; a single file's tiles use them instead "
             f"[default: all cores, here {batch.available_cores()}].")
OUTPUT_HELP = ("A file, - for stdout, or a folder (existing, or ending in /) that receives "
               "each input's name with the suffix {suffix}.  [default: each INPUT's own path "
               "with the suffix {suffix}; stdout for stdin]")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nc")
def main():
    """nc: a neural image codec.

    Lossless by default: a pixel autoregressive model gives every subpixel a
    probability and a range coder writes the bits.  Files use the .nc format
    (docs/FORMAT.md).
    """


@main.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("-o", "--output", help=OUTPUT_HELP.format(suffix=".nc"))
@click.option("-r", "--recursive", is_flag=True,
              help="Walk folders given as INPUT (every image Pillow reads; with -o FOLDER/ the "
                   "sub-folders are kept).")
@click.option("--codec", "codec_name", type=click.Choice(api.installed_codecs()),
              help="Lossless codec: arm (pixel autoregressive model, smallest files) or idf "
                   f"(integer discrete flow, faster), where its weights are installed "
                   f"[default: {api.DEFAULT_LOSSLESS}].  Not with --quality/--target-bpp.")
@click.option("-q", "--quality", type=click.FloatRange(api.MIN_QUALITY, api.MAX_QUALITY),
              help="Lossy, at this quality: 1 (smallest file) to 8 (best); fractions allowed.")
@click.option("--target-bpp", type=click.FloatRange(min=0, min_open=True),
              help="Lossy, at the best quality whose file is at most this many bits per pixel.")
@click.option("-e", "--effort", type=click.IntRange(MIN_EFFORT, MAX_EFFORT),
              help=f"Encoder effort, {MIN_EFFORT} (fastest) to {MAX_EFFORT} (smallest files) "
                   f"[default: {DEFAULT_EFFORT}].  Lossy: efforts 3 and up fit a "
                   f"post-filter to the image, 5 and up also refine the latents to it "
                   f"(effort 9 about 18x effort 7's time).  Lossless (arm): efforts 7 "
                   f"and up fit the model's last three layers to the image (a 768x512 photo: "
                   f"about 30 s at effort 7, 65 s at 9).  Decoding costs the same whatever "
                   f"the effort.")
@click.option("--model", help="Pin the model weights by id (e.g. arm-v3) [default: the codec's].")
@click.option("--strip", is_flag=True, help="Leave out the ICC profile, EXIF, XMP and text.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), help=JOBS_HELP)
@click.option("-f", "--force", is_flag=True, help="Overwrite outputs that exist.")
@click.option("-v", "--verbose", is_flag=True,
              help="Print each file's size, bpp, quality (lossy) and time.")
@click.option("--quiet", is_flag=True, help="No progress bar and no summary; errors only.")
def encode(inputs, output, recursive, codec_name, quality, target_bpp, effort, model, strip, jobs,
           force, verbose, quiet):
    """Encode images (anything Pillow reads: PNG, TIFF, BMP, …) to .nc.

    Lossless unless --quality or --target-bpp is given.  Modes RGB, RGBA, L,
    LA, 1, P (palette), I;16 and 16-bit RGB/RGBA decode to the same mode
    (lossless: the same pixels; lossy, for RGB, RGBA, L and LA: alpha stays
    lossless); other modes are refused with the mode named.  The ICC
    profile, EXIF, XMP and text come back too (--strip leaves them out).
    Images over 1024 pixels a side (lossy: 2048) are coded in tiles, on
    all cores.

    \b
      nc encode photo.png                      # photo.nc
      nc encode *.png -o out/ -j 4             # out/NAME.nc, four at a time
      nc encode - -o - < in.png > out.nc       # a pipe
    """
    try:
        options = EncodeOptions(codec=codec_name, model=model, quality=quality,
                                target_bpp=target_bpp, effort=effort, strip=strip)
    except OptionConflict as e:
        raise click.UsageError(str(e)) from None
    tasks = _plan(inputs, output, batch.NC_SUFFIX, recursive, batch.is_image_file)
    _run(tasks, batch.encoder(options, force), "encoded", jobs, verbose, quiet, _describe_encode)


@main.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("-o", "--output", help=OUTPUT_HELP.format(suffix="of the format"))
@click.option("-r", "--recursive", is_flag=True, help="Walk folders given as INPUT (every .nc file).")
@click.option("--format", "format_name",
              help="Output format: png, tiff, webp (lossless), ppm, pgm, bmp, or any other Pillow "
                   "writes [default: by the output's suffix; PNG for stdout and folders].")
@click.option("-j", "--jobs", type=click.IntRange(min=1), help=JOBS_HELP)
@click.option("-f", "--force", is_flag=True, help="Overwrite outputs that exist.")
@click.option("-v", "--verbose", is_flag=True, help="Print each file's size, mode and time.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary; errors only.")
def decode(inputs, output, recursive, format_name, jobs, force, verbose, quiet):
    """Decode .nc files to images, in the mode they were encoded from.

    The ICC profile, EXIF, XMP and text go along where the format holds them
    (PNG, TIFF, WebP); a format that cannot hold the image's mode exactly is
    refused.

    \b
      nc decode photo.nc                       # photo.png
      nc decode *.nc -o out/ --format tiff     # out/NAME.tiff
      nc decode - -o - < in.nc > out.png       # a pipe
    """
    try:
        _, suffix = files.image_format(files.STDIO, format_name)
    except NcError as e:
        raise click.UsageError(str(e)) from None
    tasks = _plan(inputs, output, suffix, recursive, batch.is_nc_file)
    _run(tasks, batch.decoder(format_name, force), "decoded", jobs, verbose, quiet,
         _describe_decode)


# what `nc info` prints, in this order, after the first two lines; other keys follow
INFO_EXTRAS = ("quality", "effort", "post_filter", "tiles", "metadata")


def _show(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_show(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_show(v) for v in value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@main.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("--json", "as_json", is_flag=True, help="Print the facts as JSON.")
def info(inputs, as_json):
    """Show what .nc files hold: codec, model, size, mode, bpp, quality (no decoding)."""
    everything, failed = {}, False
    for path in inputs:
        try:
            facts = api.info(files.read_bytes(path))
        except NcError as e:           # reported, and the other files still shown
            message = str(e)
            name = files.display_name(path)
            click.echo(f"error: {message if name in message else f'{name}: {message}'}", err=True)
            failed = True
            continue
        if as_json:
            everything[files.display_name(path)] = facts
            continue
        click.echo(f"{files.display_name(path)}: {facts['width']}x{facts['height']} "
                   f"{facts['mode']}, codec {facts['codec']}, model {facts['model']} "
                   f"({facts['weights_digest']})")
        click.echo(f"  {facts['bytes']} bytes, {facts['bpp']:.4f} bpp, format "
                   f"v{facts['format_version']}, "
                   + ", ".join(f"{k} {v} B" for k, v in facts["segments"].items()))
        for key in INFO_EXTRAS:
            if facts.get(key) not in (None, {}, []):
                click.echo(f"  {key}: {_show(facts[key])}")
    if as_json and everything:
        click.echo(json.dumps(everything if len(inputs) > 1 else everything.popitem()[1],
                              indent=2))
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
