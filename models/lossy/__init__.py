"""Lossy codec model: a quantizing autoencoder with a hyperprior and a
channel-wise autoregressive entropy model (Minnen & Singh 2020), variable
rate through per-quality gain vectors (Cui et al. 2021).

Work in progress: the network and its training; the codec pipeline that
codes its latents lands with the first trained weights.
"""
