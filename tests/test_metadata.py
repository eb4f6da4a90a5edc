"""Nothing of the input is lost: ICC profile, EXIF, XMP and text chunks go
into the metadata segment and come back, lossless and lossy; ``strip``
drops them (but never the transparency, which is image data)."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

import codec
from codec.format import metadata

SAMPLE = Path(__file__).resolve().parents[1] / "docs" / "sample.png"
EXIF = b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x01\x00\x12\x01\x03\x00\x01\x00\x00\x00\x06\x00\x00\x00\x00\x00\x00\x00"
XMP = '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'


@pytest.fixture(scope="module")
def tagged(tmp_path_factory) -> Image.Image:
    """A PNG with an ICC profile, EXIF (orientation 6), XMP and two text chunks."""
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "a comment")
    info.add_itxt("Title", "título", lang="es")
    info.add_itxt("XML:com.adobe.xmp", XMP)
    path = tmp_path_factory.mktemp("meta") / "tagged.png"
    with Image.open(SAMPLE) as im:
        im.convert("RGB").crop((0, 0, 40, 32)).save(path, icc_profile=icc, exif=EXIF, pnginfo=info)
    im = Image.open(path)
    im.load()
    return im


@pytest.mark.parametrize("options", [dict(codec="arm"), dict(codec="idf"), dict(quality=4)])
def test_metadata_round_trips(tagged, options):
    back = codec.decode(codec.encode(tagged, **options))
    assert back.info["icc_profile"] == tagged.info["icc_profile"]
    assert back.info["exif"] == tagged.info["exif"]
    assert back.info["xmp"] == tagged.info["xmp"]
    assert back.info["Comment"] == "a comment" and back.info["Title"] == "título"
    assert back.getexif()[0x0112] == 6        # orientation kept, not applied
    if "quality" not in options:
        assert np.array_equal(np.asarray(back), np.asarray(tagged))


def test_strip_drops_the_metadata_but_not_the_pixels(tagged):
    data = codec.encode(tagged, strip=True)
    back = codec.decode(data)
    assert not {"icc_profile", "exif", "xmp", "Comment"} & set(back.info)
    assert "metadata" not in codec.info(data)
    assert np.array_equal(np.asarray(back), np.asarray(tagged))
    assert len(data) < len(codec.encode(tagged))


def test_info_lists_the_metadata(tagged):
    assert codec.info(codec.encode(tagged))["metadata"] == ["exif", "icc_profile", "text", "xmp"]


def test_rgb_transparency_colour_is_kept_even_when_stripped(tagged):
    img = tagged.copy()
    img.info = {"transparency": (1, 2, 3)}
    assert codec.decode(codec.encode(img, strip=True)).info["transparency"] == (1, 2, 3)


@pytest.mark.parametrize("bad", [b"\x01\x05\x00\x00\x00ab", b"\x04\x02\x00\x00\x00ab", b"\x63\x00\x00\x00\x00",
                                 b"\x05\x00\x00\x00\x00"])
def test_malformed_metadata_records_are_refused(bad):
    with pytest.raises(codec.FormatError):
        metadata.unpack_metadata(bad)
