"""The tile grid: how an image is cut into independently coded tiles.

Images up to the tile size on both sides are one tile (the header's tile
fields are 0).  Larger ones are cut into squares in raster order, the last
column and row narrower: 1024 pixels for the lossless codecs (``TILE_SIZE``;
what an ARM tile costs in memory bounds it), 2048 for the lossy one
(``LOSSY_TILE_SIZE``: its memory is bounded by transform windows instead,
``codec/pipeline/lossy.py``, and its tiles cost rate along their borders).  Every tile is coded on its own
(its own segments, its own check value), which is what lets tiles run on
all cores, bounds memory by the tiles in flight rather than the image, and
confines damage to one tile.  The size is a multiple of 64, the lossy
codec's latent grid, so tiles share latent rows and columns with nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

TILE_SIZE = 1024
LOSSY_TILE_SIZE = 2048


@dataclass(frozen=True)
class Tile:
    index: int
    x: int
    y: int
    width: int
    height: int

    def crop(self, array):
        """This tile's part of an (H, W, ...) array."""
        return array[self.y:self.y + self.height, self.x:self.x + self.width]

    def __str__(self) -> str:
        return (f"tile {self.index} (x {self.x}..{self.x + self.width - 1}, "
                f"y {self.y}..{self.y + self.height - 1})")


@dataclass(frozen=True)
class TileGrid:
    width: int
    height: int
    tile_width: int = 0    # 0: the whole image is one tile
    tile_height: int = 0

    @classmethod
    def for_image(cls, width: int, height: int, tile_size: int = TILE_SIZE) -> "TileGrid":
        """The grid an encoder writes: one tile when the image fits in one."""
        if width <= tile_size and height <= tile_size:
            return cls(width, height)
        return cls(width, height, tile_size, tile_size)

    @property
    def columns(self) -> int:
        return -(-self.width // self.tile_width) if self.tile_width else 1

    @property
    def rows(self) -> int:
        return -(-self.height // self.tile_height) if self.tile_height else 1

    def __len__(self) -> int:
        return self.columns * self.rows

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, index: int) -> Tile:
        if not 0 <= index < len(self):
            raise IndexError(index)
        if not self.tile_width:
            return Tile(0, 0, 0, self.width, self.height)
        r, c = divmod(index, self.columns)
        x, y = c * self.tile_width, r * self.tile_height
        return Tile(index, x, y, min(self.tile_width, self.width - x),
                    min(self.tile_height, self.height - y))
