"""From pictures to segments and back.

``image.py`` codes a whole picture: the header, the whole-image segments and
the tiles, which ``parallel.py`` runs on all cores (``lossy_image.py`` its
lossy side); ``lossless.py`` and
``lossy.py`` code one tile with a model codec (``codec.arm``, ``codec.idf``,
``codec.lossy``); ``fallback.py`` is the deflate any sample segment falls
back to where the model would be larger."""
