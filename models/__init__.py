"""The networks of nc: their training-time (PyTorch) form, their exact integer
form used by the codec, the training scripts, and the shipped weights."""
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
