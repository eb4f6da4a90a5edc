"""The .nc bitstream (docs/FORMAT.md): the container (header, segment table,
CRCs), the tile grid, the tiles' check values and the whole-image records
(metadata, palette).  Nothing here knows a model or a pixel's meaning."""
