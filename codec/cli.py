"""The ``nc`` command line: encode, decode, info.

Every failure the user can cause (bad input, corrupt file, existing output)
ends as one ``error: …`` line on stderr and exit status 1; usage mistakes
exit 2 (click's convention).  Nothing is written unless the whole operation
succeeded.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from . import __version__, api
from .errors import NcError


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
    except KeyboardInterrupt:
        _fail("interrupted")
    except OSError as e:
        _fail(f"{e.filename or ''}: {e.strerror or e}".lstrip(": "))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nc")
def main():
    """nc: a neural image codec.

    Lossless by default: a pixel autoregressive model gives every subpixel a
    probability and a range coder writes the bits.  Files use the .nc format
    (docs/FORMAT.md).
    """


@main.command()
@click.argument("input", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Output .nc file [default: INPUT with the suffix .nc].")
@click.option("--codec", "codec_name", type=click.Choice(api.installed_codecs()),
              default=api.DEFAULT_LOSSLESS, show_default=True,
              help="Lossless codec: arm (pixel autoregressive model, smallest files) or idf "
                   "(integer discrete flow, faster), where its weights are installed.")
@click.option("-q", "--quality", type=click.FloatRange(api.MIN_QUALITY, api.MAX_QUALITY),
              help="Lossy, at this quality: 1 (smallest file) to 8 (best); fractions allowed.")
@click.option("--target-bpp", type=click.FloatRange(min=0, min_open=True),
              help="Lossy, at the best quality whose file is at most this many bits per pixel.")
@click.option("-f", "--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
@click.option("-v", "--verbose", is_flag=True, help="Print size, bpp and timing.")
def encode(input, output, codec_name, quality, target_bpp, force, verbose):
    """Encode an image (anything Pillow reads: PNG, TIFF, BMP, …) to .nc.

    Lossless unless --quality or --target-bpp is given.  Modes RGB, RGBA, L,
    LA and 1 decode to the same mode (lossless: the same pixels; lossy: alpha
    stays lossless); other modes are refused with the mode named.
    """
    if quality is not None and target_bpp is not None:
        raise click.UsageError("give --quality or --target-bpp, not both")
    output = output or input.with_suffix(".nc")
    t = time.perf_counter()
    r = _guard(api.encode_file, input, output, codec_name, force=force, quality=quality,
               target_bpp=target_bpp)
    if verbose and not r.ideal_bits:
        click.echo(f"{output}: {len(r.data)} bytes, {r.bpp:.4f} bpp, {time.perf_counter() - t:.2f} s")
    elif verbose:
        click.echo(f"{output}: {len(r.data)} bytes, {r.bpp:.4f} bpp (model's ideal "
                   f"{r.ideal_bits / r.pixels:.4f} bpp, overhead {100 * r.overhead:+.3f} %), "
                   f"{time.perf_counter() - t:.2f} s")


@main.command()
@click.argument("input", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Output image; the format follows the suffix [default: INPUT as .png].")
@click.option("-f", "--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
@click.option("-v", "--verbose", is_flag=True, help="Print timing.")
def decode(input, output, force, verbose):
    """Decode a .nc file to an image, in the mode it was encoded from."""
    output = output or input.with_suffix(".png")
    t = time.perf_counter()
    img = _guard(api.decode_file, input, output, force=force)
    if verbose:
        click.echo(f"{output}: {img.width}x{img.height} {img.mode}, {time.perf_counter() - t:.2f} s")


@main.command()
@click.argument("input", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the facts as JSON.")
def info(input, as_json):
    """Show what a .nc file holds: codec, model, size, mode, bpp (no decoding)."""
    facts = _guard(lambda: api.info(api.read_bytes(input)))
    if as_json:
        click.echo(json.dumps(facts, indent=2))
        return
    click.echo(f"{input}: {facts['width']}x{facts['height']} {facts['mode']}, "
               f"codec {facts['codec']}, model {facts['model']} ({facts['weights_digest']})")
    click.echo(f"  {facts['bytes']} bytes, {facts['bpp']:.4f} bpp, format v{facts['format_version']}, "
               + ", ".join(f"{k} {v} B" for k, v in facts["segments"].items()))


if __name__ == "__main__":
    main()
