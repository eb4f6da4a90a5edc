"""The networks of nc: their training-time (PyTorch) form, their exact integer
form used by the codec, the training scripts, and the shipped weights."""
import os
from pathlib import Path

# NC_WEIGHTS_DIR points the codec at another folder of weights (tests use it
# for throw-away models; nothing is ever downloaded).
WEIGHTS_DIR = Path(os.environ.get("NC_WEIGHTS_DIR") or Path(__file__).resolve().parent / "weights")
