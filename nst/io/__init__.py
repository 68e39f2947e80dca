"""Image and file I/O: decoding, atomic writes, grids. No torch networks, no Lightning."""
