"""What the encode options mean together: one rule for the command line and
the Pillow plugin.

An option the codec would ignore is a mistake the user should hear about:
``--codec idf --quality 3`` asks for a lossless codec and a lossy quality at
once, so it is refused here rather than one of the two being dropped.  The
CLI turns an ``OptionConflict`` into a usage error (exit 2); the plugin lets
it propagate from ``Image.save`` (it is also a ``ValueError``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from codec.errors import NcError

MIN_EFFORT, MAX_EFFORT, DEFAULT_EFFORT = 1, 9, 7


class OptionConflict(NcError, ValueError):
    """Encode options that cannot all be honoured."""


@dataclass(frozen=True)
class EncodeOptions:
    """How to encode; ``None`` means the codec's default.  Checked on creation."""

    codec: str | None = None          # a lossless codec by name; None: arm, or lossy
    model: str | None = None          # pinned weights id
    quality: float | None = None      # lossy, 1 (smallest) .. 8 (best)
    target_bpp: float | None = None   # lossy, the best quality that fits
    effort: int | None = None         # 1 (fastest) .. 9; None: DEFAULT_EFFORT
    strip: bool = False               # drop ICC profile, EXIF, XMP, text

    def __post_init__(self):
        from codec import api

        lossy = self.quality is not None or self.target_bpp is not None
        if self.quality is not None and self.target_bpp is not None:
            raise OptionConflict("a quality and a target bpp exclude each other; give one")
        if self.codec is not None and self.codec not in api.CODEC_NAMES:
            raise OptionConflict(f"unknown codec '{self.codec}' "
                                 f"(choose from {', '.join(api.CODEC_NAMES)})")
        if self.codec is not None and lossy:
            raise OptionConflict(f"codec '{self.codec}' is lossless and takes no quality or "
                                 f"target bpp (leave the codec out for lossy)")
        if self.quality is not None and not api.MIN_QUALITY <= self.quality <= api.MAX_QUALITY:
            raise OptionConflict(f"quality must be between {api.MIN_QUALITY:g} and "
                                 f"{api.MAX_QUALITY:g}, not {self.quality:g}")
        if self.target_bpp is not None and not self.target_bpp > 0:
            raise OptionConflict(f"target bpp must be above 0, not {self.target_bpp:g}")
        if self.effort is not None and (isinstance(self.effort, bool) or self.effort != int(self.effort)
                                        or not MIN_EFFORT <= self.effort <= MAX_EFFORT):
            raise OptionConflict(f"effort must be a whole number from {MIN_EFFORT} to "
                                 f"{MAX_EFFORT}, not {self.effort}")

    @property
    def lossy(self) -> bool:
        return self.quality is not None or self.target_bpp is not None

    def encode_kwargs(self) -> dict:
        """Keyword arguments for ``api.encode_image`` (``jobs`` apart)."""
        from codec import api

        kwargs = asdict(self)
        kwargs["codec"] = self.codec or api.DEFAULT_LOSSLESS
        return kwargs
