"""What a process pays before it codes: decoding an ARM file never imports
PyTorch (about 1.4 s of a decode process here), nor does encoding one below
effort 7 (from 7 the encoder fits the model's head with it); nor does
decoding an IDF file (its integer flow is NumPy, models/idf/integer.py) or
encoding one below the size where the priors are adapted; lossy files
bring it in when they need it.  Nor does an IDF decode import numba (about
0.15 s), which only the ARM's compiled kernels use."""

import subprocess
import sys

import codec


def _modules_after(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_arm_files_encode_and_decode_without_importing_pytorch(photo, tmp_path):
    png = tmp_path / "photo.png"
    photo.save(png)
    path = tmp_path / "photo.nc"
    path.write_bytes(codec.encode(photo))
    out = _modules_after(
        "import sys, codec, codec.cli\n"
        f"data = open({str(path)!r}, 'rb').read()\n"
        "codec.decode(data)\n"
        f"from PIL import Image; codec.encode(Image.open({str(png)!r}), effort=6)\n"
        "print('torch' in sys.modules)")
    assert out == "False"


def test_idf_files_encode_and_decode_without_importing_pytorch(photo, tmp_path):
    png = tmp_path / "photo.png"
    photo.save(png)
    out = _modules_after(
        "import sys, codec\n"
        f"from PIL import Image; image = Image.open({str(png)!r})\n"
        "data = codec.encode(image, codec='idf')\n"
        "assert codec.decode(data).tobytes() == image.tobytes()\n"
        "print('torch' in sys.modules)")
    assert out == "False"


def test_idf_files_decode_without_importing_numba(photo, tmp_path):
    path = tmp_path / "photo.nc"
    path.write_bytes(codec.encode(photo, codec="idf"))
    out = _modules_after(
        "import sys, codec, codec.cli\n"
        f"image = codec.decode(open({str(path)!r}, 'rb').read())\n"
        "print(image.size, 'numba' in sys.modules, 'codec.arm.codec' in sys.modules)")
    assert out == f"{photo.size} False False"


def test_lossy_files_still_find_pytorch(photo, tmp_path):
    path = tmp_path / "photo.nc"
    path.write_bytes(codec.encode(photo, "lossy", quality=3.0))
    out = _modules_after(
        "import sys, codec\n"
        f"print(codec.decode(open({str(path)!r}, 'rb').read()).size, 'torch' in sys.modules)")
    assert out == f"{photo.size} True"
