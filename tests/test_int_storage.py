"""Shipped integer weights are stored narrow and read back as exported
(models/int_storage.py)."""
import numpy as np
import pytest

from models.int_storage import narrow, widen


def test_narrowing_round_trips_values_and_types():
    tensors = {"w8": np.array([-128, 127], np.int32), "w16": np.array([[-129, 5]], np.int64),
               "w32": np.array([1 << 20], np.int64), "wide": np.array([1 << 40], np.int64),
               "small": np.array([1, 2], np.int8), "f": np.array([0.5], np.float32),
               "empty": np.zeros(0, np.int32)}
    stored, meta = narrow(tensors)
    assert [stored[k].dtype.name for k in ("w8", "w16", "w32", "wide", "small", "f", "empty")] == \
        ["int8", "int16", "int32", "int64", "int8", "float32", "int32"]
    back = widen(stored, meta)
    for name, t in tensors.items():
        assert back[name].dtype == t.dtype, name
        np.testing.assert_array_equal(back[name], t)


def test_files_without_the_metadata_read_as_stored():
    t = {"a": np.array([1], np.int32)}
    assert widen(t, None)["a"].dtype == np.int32 and widen(t, {})["a"].dtype == np.int32


def test_narrow_idf_weights_code_as_the_shipped_ones(tmp_path, temp_weights_dir, photo):
    """idf-v6 re-exported (narrowed, smaller) codes an image to
    the very bytes the shipped file does."""
    from codec import weights
    from codec.idf.codec import IDFPlaneCodec
    from models.idf.export import export

    pixels = np.asarray(photo)[:64, :80]
    shipped = weights.weights_path("idf-v6")
    before = IDFPlaneCodec("idf-v6").encode(pixels).data
    export(shipped, tmp_path / "idf-v6.safetensors", "idf-v6")
    assert (tmp_path / "idf-v6.safetensors").stat().st_size < 0.8 * shipped.stat().st_size
    temp_weights_dir(tmp_path)
    assert weights.load("idf-v6", "idf").tensors["flow0.0.1.0.weight"].dtype == np.int32
    assert IDFPlaneCodec("idf-v6").encode(pixels).data == before


if __name__ == "__main__":
    pytest.main([__file__])
