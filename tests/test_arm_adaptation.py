"""The ARM adapted to one image (codec/arm/adaptation.py): the changes of
its head and of its hidden layers travel ahead of the pixels in the
segment's stream, the decoder applies them exactly, they lower the code
length they were fitted on, and a malformed one is a one-line FormatError."""
import numpy as np
import pytest

from codec.arm import adaptation, columns
from codec.arm.codec import ARMPlaneCodec
from codec.entropy import SymbolDecoder, SymbolEncoder
from codec.errors import FormatError
from codec.weights import DEFAULT_MODELS


@pytest.fixture(scope="module")
def arm():
    return ARMPlaneCodec(DEFAULT_MODELS["arm"])


def _with_change(arm, pixels, change, layout=None):
    geo, buf, values = arm._layout(pixels)
    return arm._write(geo, values, 3, arm._plan(geo, buf, values, 3, layout, change)).data


def _random_change(arm, seed=0, size=6, ranks=(), factor_size=20, head=True):
    """A head change (unless not ``head``) and, per entry of ``ranks``, a
    change of that rank of the hidden layers from the last back (0: none)."""
    rng = np.random.default_rng(seed)
    head = (adaptation.HeadChange(rng.integers(-size, size + 1, arm.net.layers[-1][0].shape))
            if head else None)
    hidden = []
    for j, rank in enumerate(ranks):
        inputs, outputs = arm.net.layers[-2 - j][0].shape
        hidden.append(adaptation.LowRankChange(
            rng.integers(-factor_size, factor_size + 1, (inputs, rank)),
            rng.integers(-factor_size, factor_size + 1, (rank, outputs))) if rank else None)
    return adaptation.ImageChange(head, tuple(hidden))


@pytest.mark.parametrize("layout, ranks, byte", [
    (None, (), 0), (0, (), 0), (None, (8,), 8), (0, (3,), 3),
    (None, (8, 4), adaptation.DEEP_CHANGE + 2), (0, (0, 5), adaptation.DEEP_CHANGE + 2),
    (None, (6, 0), 6)])
def test_a_change_round_trips_exactly(arm, photo_large, layout, ranks, byte):
    """Prefix byte 3: the last hidden layer's rank when it alone changes
    (the form nc 0.22 wrote), DEEP_CHANGE + 2 when the layer before changes too."""
    pixels = np.asarray(photo_large)
    data = _with_change(arm, pixels, _random_change(arm, ranks=ranks), layout)
    assert data[2] == adaptation.PER_OUTPUT_LEVELS   # the prefix names the change's form
    assert data[3] == byte
    np.testing.assert_array_equal(arm.decode(data, *pixels.shape), pixels)


@pytest.mark.parametrize("ranks, byte", [((8,), 8), ((8, 4), adaptation.DEEP_CHANGE + 2)])
def test_a_change_of_the_hidden_layers_alone_round_trips_exactly(arm, photo_large, ranks, byte):
    """The encoder's change since nc 0.33: prefix byte 2 UNCHANGED_HEAD, no
    head change in the stream, and the decoder really runs the changed
    network (read as a head change instead, the stream no longer gives
    the image)."""
    pixels = np.asarray(photo_large)
    data = _with_change(arm, pixels, _random_change(arm, ranks=ranks, head=False))
    assert (data[2], data[3]) == (adaptation.UNCHANGED_HEAD, byte)
    np.testing.assert_array_equal(arm.decode(data, *pixels.shape), pixels)
    damaged = bytearray(data)
    damaged[2] = adaptation.PER_OUTPUT_LEVELS
    try:
        out = arm.decode(bytes(damaged), *pixels.shape)
    except Exception:         # the range decoder may fail outright (the pipeline reports it)
        return
    assert not np.array_equal(out, pixels)


def test_the_hidden_change_is_exact_integer_arithmetic():
    """(down @ up) >> LOW_RANK_SHIFT: a floor, also of negative products."""
    change = adaptation.LowRankChange(np.array([[3], [-3]]), np.array([[5, -1]]))
    np.testing.assert_array_equal(change.delta(), np.floor(np.array([[15, -3], [-15, 3]])
                                                           / 2**adaptation.LOW_RANK_SHIFT))


@pytest.mark.parametrize("cleared, ranks, byte", [(2, (), 0), (3, (8,), 0), (3, (8, 4), 8)])
def test_the_decoder_runs_the_changed_network(arm, photo_large, cleared, ranks, byte):
    """Read without its change (prefix byte 2, or 3 for the hidden
    layers', cleared, or read as the last one's alone), the stream no
    longer gives the image: the change is really applied."""
    pixels = np.asarray(photo_large)
    data = bytearray(_with_change(arm, pixels, _random_change(arm, size=40, ranks=ranks)))
    data[cleared] = byte
    try:
        out = arm.decode(bytes(data), *pixels.shape)
    except Exception:         # the range decoder may fail outright (the pipeline reports it)
        return
    assert not np.array_equal(out, pixels)


def test_the_fit_lowers_the_code_length_it_was_fitted_on(arm, photo_large):
    """150 steps (of 2^13 pixels): Adam's first steps move every weight by
    the full step size and raise the code length (arm-v4: +10 % at 20
    steps, +0.1 % at 60) before it falls (-2.2 % at 150).  The head's
    change (as nc 0.15 ... 0.32 fitted it) and the hidden layers' (as the
    encoder fits them now) each lower it (by 4 % and 6 % here)."""
    pixels = np.asarray(photo_large)
    geo, buf, values = arm._layout(pixels)
    head, hidden = adaptation.fit(arm.net, geo.context(buf, geo.flat), values,
                                  (adaptation.Fit(150, (), 1 << 13, head=True),
                                   adaptation.Fit(150, (8, 4), 1 << 13)), 10**9)
    assert head.head.weights.any() and head.hidden == ()
    assert hidden.head is None and hidden.ranks == (8, 4)
    before = arm._estimated_bits(geo, buf, values, 3, arm.net, 1)
    after_head = arm._estimated_bits(geo, buf, values, 3, head.apply(arm.net), 1)
    after_hidden = arm._estimated_bits(geo, buf, values, 3, hidden.apply(arm.net), 1)
    assert after_head < 0.99 * before
    assert after_hidden < 0.99 * before


def test_the_fit_reads_no_gradient_past_an_output_bound(arm, photo_large, monkeypatch):
    """The fit's loss clamps the head's outputs with ``torch.clamp``: the
    straight-through clamp's gradient at the lowest scale level misled it
    (adaptation.py, ``loss_of``)."""
    import torch

    import models.arm.network as network

    bounds = []
    real = network.mixture_bits

    def recording(raw, x, spec, bound=network.clamp_ste):
        bounds.append(bound)
        return real(raw, x, spec, bound)

    monkeypatch.setattr(network, "mixture_bits", recording)
    geo, buf, values = arm._layout(np.asarray(photo_large))
    adaptation.fit(arm.net, geo.context(buf, geo.flat), values, (adaptation.Fit(2, (2,), 64),), 10**9)
    assert bounds and all(b is torch.clamp for b in bounds)


@pytest.mark.parametrize("min_pixels", [None, 0])
def test_small_images_keep_the_shipped_head(arm, photo, monkeypatch, min_pixels):
    """On 48x40 pixels no change pays for its bytes: the file is the one
    effort 6 writes, whether or not the encoder tries one (min_pixels 0)."""
    if min_pixels is not None:      # (shorter fits than effort 9's, to keep the test quick)
        monkeypatch.setattr(adaptation, "MIN_PIXELS", min_pixels)
        monkeypatch.setattr(adaptation, "_FITS", {9: (adaptation.Fit(100, (), 1 << 12, head=True),
                                                        adaptation.Fit(100, (8, 4), 1 << 12))})
    pixels = np.asarray(photo)
    assert arm.encode(pixels, effort=9).data == arm.encode(pixels, effort=6).data


@pytest.mark.parametrize("index, byte", [
    (2, adaptation.UNCHANGED_HEAD), (2, 67), (2, 255), (3, adaptation.MAX_RANK + 1), (3, 255),
    (3, adaptation.DEEP_CHANGE), (3, adaptation.DEEP_CHANGE + 1), (3, adaptation.DEEP_CHANGE + 3)])
def test_an_invalid_change_byte_is_a_format_error(arm, photo_large, index, byte):
    """(UNCHANGED_HEAD with prefix byte 3 = 0 would announce a change of nothing.)"""
    pixels = np.asarray(photo_large)
    data = bytearray(_with_change(arm, pixels, _random_change(arm)))
    data[index] = byte
    with pytest.raises(FormatError, match="prefix"):
        arm.decode(bytes(data), *pixels.shape)


@pytest.mark.parametrize("byte", [8, adaptation.DEEP_CHANGE + 2])
def test_a_hidden_change_without_a_head_change_is_a_format_error(arm, photo_large, byte):
    """A hidden change is announced with prefix byte 2 = PER_OUTPUT_LEVELS
    (a head change comes first) or UNCHANGED_HEAD; with byte 2 = 0 it is
    no layout an encoder writes."""
    pixels = np.asarray(photo_large)
    geo, buf, values = arm._layout(pixels)
    data = bytearray(arm._write(geo, values, 3, arm._plan(geo, buf, values, 3, None)).data)
    data[3] = byte
    with pytest.raises(FormatError, match="prefix"):
        arm.decode(bytes(data), *pixels.shape)


def test_a_head_change_on_a_grey_plane_is_a_format_error(arm, photo_large):
    grey = np.asarray(photo_large.convert("L"))[..., None]
    data = bytearray(arm.encode(grey).data)
    data[2] = 10
    with pytest.raises(FormatError, match="prefix"):
        arm.decode(bytes(data), *grey.shape)


def test_a_change_beyond_the_exact_range_is_a_format_error(arm, photo_large, monkeypatch):
    pixels = np.asarray(photo_large)
    data = _with_change(arm, pixels, _random_change(arm))

    def too_large(self, head, hidden=()):
        raise ValueError("weights too large for exact float64 evaluation")
    monkeypatch.setattr(type(arm.net), "with_changes", too_large)
    with pytest.raises(FormatError, match="network change"):
        arm.decode(data, *pixels.shape)


def test_a_head_change_level_out_of_range_is_refused(arm):
    """The per-output scale levels are range-coded; one beyond the table
    (only a damaged stream holds one) is refused, never indexed (the
    decoder turns the ValueError into a FormatError, as for a change
    beyond the exact range)."""
    n_out, n_levels = arm.net.layers[-1][0].shape[1], arm.tables.cdf.shape[0]
    levels = np.full(n_out, 10)
    levels[3] = n_levels + 5
    enc = SymbolEncoder()
    enc.encode(levels, columns.uniform_rows(n_out, n_levels))
    with pytest.raises(ValueError, match="level"):
        adaptation.HeadChange.decode(SymbolDecoder(enc.finish()), arm.tables,
                                     adaptation.PER_OUTPUT_LEVELS, arm.net.layers[-1][0].shape)


def test_each_head_output_gets_its_own_table(arm):
    """Columns of different spread get different scale levels, and the
    change's estimated bits are no more than one level for all would cost
    (the 24 levels' own 18 bytes aside)."""
    shape = arm.net.layers[-1][0].shape
    rng = np.random.default_rng(1)
    weights = np.zeros(shape, np.int64)
    weights[:, 0] = rng.integers(-40, 41, shape[0])
    weights[:, 1] = rng.integers(-2, 3, shape[0])
    levels, bits = adaptation.HeadChange(weights).table(arm.tables)
    assert levels[0] > levels[1] >= levels[2]
    assert levels[2] == levels.min()
    s = weights.ravel() + 128
    one_level = min(-arm.tables.log2_probabilities(s, *columns.row_model(arm.tables, level, len(s))).sum()
                    for level in range(arm.tables.cdf.shape[0]))
    assert bits - len(levels) * np.log2(arm.tables.cdf.shape[0]) <= one_level


def test_a_deep_change_rank_out_of_range_is_refused(arm):
    """The ranks of a deep change are range-coded after the head's change;
    one above MAX_RANK (only a damaged stream holds one) is refused."""
    head = _random_change(arm).head
    levels, _ = head.table(arm.tables)
    enc = SymbolEncoder()
    head.encode(enc, arm.tables, levels)
    enc.encode(np.array([8, adaptation.MAX_RANK + 7]), columns.uniform_rows(2, adaptation.MAX_RANK + 1))
    with pytest.raises(ValueError, match="rank"):
        adaptation.ImageChange.decode(SymbolDecoder(enc.finish()), arm.tables, adaptation.PER_OUTPUT_LEVELS,
                                      adaptation.DEEP_CHANGE + 2, arm.net)


def test_the_change_reaches_the_layer_before_the_last(arm):
    """A deep change alters the hidden layer before the last, and only the
    layers it names."""
    change = _random_change(arm, ranks=(0, 4))
    changed = change.apply(arm.net)
    assert change.hidden[0] is None and change.ranks == (0, 4)
    np.testing.assert_array_equal(changed.layers[-2][0], arm.net.layers[-2][0])
    np.testing.assert_array_equal(changed.layers[-3][0] - arm.net.layers[-3][0], change.hidden[1].delta())
    np.testing.assert_array_equal(changed.layers[0][0], arm.net.layers[0][0])


def test_fits_side_by_side_keep_their_order_and_the_thread_count():
    """The encoder runs its fits (and its plans under them) on one PyTorch
    thread each, several at once; the results come back in the order given,
    and the thread count the caller had is restored, even after a failure."""
    import threading

    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []

        def work(item):
            seen.append((torch.get_num_threads(), threading.get_ident()))
            return item * item

        assert adaptation.side_by_side(work, [3, 1, 2], cost=lambda item: item) == [9, 1, 4]
        assert all(threads == 1 for threads, _ in seen)
        assert torch.get_num_threads() == 2

        def fail(item):
            raise RuntimeError("a fit failed")

        with pytest.raises(RuntimeError, match="a fit failed"):
            adaptation.side_by_side(fail, [1, 2])
        assert torch.get_num_threads() == 2
        assert adaptation.side_by_side(work, [5]) == [25]      # one item: in this thread
    finally:
        torch.set_num_threads(before)


def test_the_fit_judges_the_integers_the_file_holds():
    """What the fit's loss adds to the weights once it rounds the head's
    change (``_as_sent``) is exactly what the decoder adds for the
    integers the fit ends on (``_image_change``): the hidden layers'
    products floored as ``LowRankChange.delta`` shifts them, not rounded
    (that shifted every changed weight by -0.4 of a unit), and the head's
    change rounded (unrounded, the fit kept states worth 0.3 bits a pixel
    less than the file it wrote)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    d_head = torch.randn(128, 24, generator=gen) * 3
    gain = torch.ones(128, 24)
    gain[:, :4] = 3
    factors = {5: (torch.randn(128, 8, generator=gen) * 9, torch.randn(8, 128, generator=gen) * 9),
               4: (torch.randn(128, 4, generator=gen) * 9, torch.randn(4, 128, generator=gen) * 9)}
    head, hidden, sent = adaptation._as_sent(d_head, gain, factors, snap_head=True)
    change = adaptation._image_change(d_head, gain, factors, n_hidden=6, depth=2)
    assert change.ranks == (8, 4)
    assert np.array_equal(head.detach().numpy(), change.head.weights)
    for j, i in enumerate((5, 4)):
        assert np.array_equal(hidden[i].detach().numpy(), change.hidden[j].delta())
    # the rate term counts the integers sent
    assert float(sent) == np.abs(change.head.weights).sum() + sum(
        np.abs(c.down).sum() + np.abs(c.up).sum() for c in change.hidden)
    # a product's floor and its rounding differ on about half the weights here
    assert (change.hidden[0].delta() != np.round(change.hidden[0].down @ change.hidden[0].up / 8)).mean() > 0.3
