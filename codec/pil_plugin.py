"""Pillow plugin: ``Image.open("x.nc")`` and ``im.save("x.nc")`` just work
once ``codec`` is imported.  Save options arrive as keyword arguments, e.g.
``im.save("x.nc", codec="arm")``."""
from __future__ import annotations

from PIL import Image, ImageFile

from . import api, container


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
            self._nc_data = None
        return Image.Image.load(self)


def _save(im: Image.Image, fp, filename) -> None:
    opts = im.encoderinfo
    fp.write(api.encode(im, codec=opts.get("codec", api.DEFAULT_LOSSLESS), model=opts.get("model")))


Image.register_open(NcImageFile.format, NcImageFile, _accept)
Image.register_save(NcImageFile.format, _save)
Image.register_extension(NcImageFile.format, ".nc")
Image.register_mime(NcImageFile.format, "image/x-nc")
