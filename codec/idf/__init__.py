"""The integer discrete flow's codec (the network is ``models/idf``): the
flow's latents coded coarsest first (``codec.py``), and the per-image
corrections of its prior (``feedback.py``)."""
