"""How well can the transforms reconstruct at all?  A diagnostic.

    python -m models.lossy.ceiling models/checkpoints/lossy.safetensors

For each held-out photograph (768x512 centre crops, never Kodak) it prints
the PSNR of g_s(g_a(x)) with the latent left unquantized — no rate can buy
more than this — beside the network's PSNR and bpp at the best quality, and
the PSNR of the best *linear* code of the same width: the top M (and 2M)
principal components of 16x16 blocks, fitted on the training photographs.
Why: when the unquantized reconstruction is barely above block PCA of the
latent's width and the best quality is already close to it, the latent's
width, not training of the rate, caps the top of the RD curve (lossy-v10 in
docs/MODELS.md).
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from ..data import DEFAULT_TRAIN_DIR, centre_crop, load_images
from ..training import load_checkpoint
from .network import LossyAutoencoder
from .spec import LossySpec

BLOCK = 16  # the latent's stride: one latent position per 16x16 block


def blocks(image: np.ndarray) -> np.ndarray:
    """(count, 16*16*3) float64 rows, the image's whole 16x16 blocks."""
    h, w = image.shape[0] // BLOCK * BLOCK, image.shape[1] // BLOCK * BLOCK
    b = image[:h, :w].astype(np.float64).reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK, 3)
    return b.transpose(0, 2, 1, 3, 4).reshape(-1, BLOCK * BLOCK * 3)


def psnr(mse: float) -> float:
    return 10 * np.log10(255.0**2 / mse)


def block_pca(train: list[np.ndarray]):
    """(mean, components by decreasing variance) of the training blocks."""
    rows = np.concatenate([blocks(im) for im in train])
    mean = rows.mean(0)
    _, vectors = np.linalg.eigh(np.cov((rows - mean).T))
    return mean, vectors[:, ::-1]


def pca_psnr(image: np.ndarray, mean, components, width: int) -> float:
    x = blocks(image) - mean
    basis = components[:, :width]
    return psnr(float(np.mean((x - x @ basis @ basis.T) ** 2)))


def network_psnr(net: LossyAutoencoder, image: np.ndarray) -> tuple[float, float, float]:
    """(unquantized PSNR, best-quality PSNR, best-quality bpp) of the network."""
    x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255
    pixels = image.shape[0] * image.shape[1]

    def error(x_hat):
        levels = torch.round(x_hat.clamp(0, 1) * 255)
        return psnr(float(torch.mean((levels - x * 255) ** 2)))

    with torch.no_grad():
        unquantized = error(net.g_s(net.g_a(x)))
        x_hat, y_bits, z_bits = net(x, torch.tensor([float(net.spec.qualities)]))
    return unquantized, error(x_hat), float(y_bits.sum() + z_bits.sum()) / pixels


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a training checkpoint (.pt) or weights (.safetensors)")
    p.add_argument("--data", default=DEFAULT_TRAIN_DIR)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    _, _, net = load_checkpoint(args.checkpoint, LossySpec, LossyAutoencoder)
    net.eval()
    train, held = load_images(args.data)
    mean, components = block_pca(train)
    m = net.spec.m
    print(f"{'image':>5}  {'unquantized':>11}  {f'q{net.spec.qualities}':>17}  "
          f"{f'PCA {m}':>8}  {f'PCA {2 * m}':>8}")
    for k, image in enumerate(held):
        crop = centre_crop(image, 512, 768)
        unquantized, best, bpp = network_psnr(net, crop)
        print(f"{k:>5}  {unquantized:>8.2f} dB  {best:>6.2f} dB {bpp:.3f} bpp  "
              f"{pca_psnr(crop, mean, components, m):>5.2f} dB  "
              f"{pca_psnr(crop, mean, components, 2 * m):>5.2f} dB")


if __name__ == "__main__":
    main()
