"""Pixel autoregressive model (ARM) for lossless coding.

A PixelCNN-style model whose only spatial layer is one causal (masked)
convolution over a small neighbourhood of already-coded pixels, followed by
1x1 layers.  Because the receptive field is that neighbourhood, the decoder
evaluates the network only for the pixels of one wavefront at a time (see
``codec/arm/codec.py``).  Each subpixel gets a discretized logistic mixture;
G is conditioned on R and B on R and G through mean shifts (PixelCNN++).
"""
from .spec import ARMSpec

__all__ = ["ARMSpec"]
