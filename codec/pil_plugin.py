"""Pillow plugin: ``Image.open("x.nc")`` and ``im.save("x.nc")`` just work
once ``codec`` is imported.

Save options are the command line's, as keyword arguments::

    im.save("x.nc")                         # lossless (arm)
    im.save("x.nc", codec="idf", effort=3)  # another lossless codec, faster
    im.save("x.nc", quality=4)              # lossy; or target_bpp=0.8
    im.save("x.nc", model="arm-v3", jobs=4, strip=True)

An option nc does not know, or options that conflict (a lossless ``codec``
with a ``quality``), raise ``ValueError`` instead of being dropped.  The
ICC profile, EXIF and XMP in ``im.info`` are kept unless ``strip=True``;
opened images carry them in ``info`` again.
"""
from __future__ import annotations

from PIL import Image, ImageFile

from codec import api
from codec.format import container
from codec.options import EncodeOptions, OptionConflict

SAVE_OPTIONS = ("codec", "model", "quality", "target_bpp", "effort", "jobs", "strip")


def _accept(prefix: bytes) -> bool:
    return prefix[:len(container.MAGIC)] == container.MAGIC


class NcImageFile(ImageFile.ImageFile):
    format = "NC"
    format_description = "nc neural image codec"

    def _open(self) -> None:
        self._nc_data = self.fp.read()
        header = container.unpack_header(self._nc_data)
        self._mode = header.mode.pil
        self._size = (header.width, header.height)
        self.tile = []

    def load(self):
        if self._nc_data is not None:
            decoded = api.decode(self._nc_data)
            self.im = decoded.im
            self.info.update(decoded.info)
            self._nc_data = None
        return Image.Image.load(self)


def _save(im: Image.Image, fp, filename) -> None:
    opts = dict(im.encoderinfo)
    unknown = sorted(set(opts) - set(SAVE_OPTIONS))
    if unknown:
        raise OptionConflict(f"nc does not take the save option(s) {', '.join(unknown)} "
                             f"(it takes {', '.join(SAVE_OPTIONS)})")
    jobs = opts.pop("jobs", 1)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise OptionConflict(f"jobs must be a whole number of at least 1, not {jobs!r}")
    options = EncodeOptions(**opts)
    fp.write(api.encode(im, jobs=jobs, **options.encode_kwargs()))


Image.register_open(NcImageFile.format, NcImageFile, _accept)
Image.register_save(NcImageFile.format, _save)
Image.register_extension(NcImageFile.format, ".nc")
Image.register_mime(NcImageFile.format, "image/x-nc")
