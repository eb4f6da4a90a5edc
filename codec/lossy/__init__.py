"""The quantizing autoencoder's codec (the network is ``models/lossy``):
analysis, hyper-latents, the slice walk of the latents and synthesis
(``codec.py``); tiles and windows are ``codec/pipeline/lossy.py``'s."""
