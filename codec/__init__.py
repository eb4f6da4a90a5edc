"""nc: a neural image codec.

    import codec
    data = codec.encode(Image.open("photo.png"))      # lossless, ARM
    image = codec.decode(data)                          # same pixels, same mode
    codec.info(data)                                    # header facts
    Image.open("photo.nc"); image.save("copy.nc")       # Pillow plugin

See ``docs/FORMAT.md`` for the file format and ``docs/MODELS.md`` for the models.
"""

from codec.api import decode, decode_file, decode_picture, encode, encode_file, encode_image, info
from codec.errors import FormatError, NcError, UnsupportedImage, WeightsMismatch
from codec.picture import Picture
from codec import pil_plugin  # noqa: E402,F401,I001  (registers .nc with Pillow)

__all__ = ["encode", "decode", "decode_picture", "info", "encode_image", "encode_file",
           "decode_file", "Picture",
           "NcError", "FormatError", "UnsupportedImage", "WeightsMismatch"]
__version__ = "0.35.0"
