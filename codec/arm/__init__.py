"""The pixel autoregressive model's codec (the network is ``models/arm``):
the wavefront coding order, encoder and decoder (``codec.py``), and the
per-image error feedback the encoder fits and sends (``feedback.py``)."""
