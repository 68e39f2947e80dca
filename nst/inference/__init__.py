"""One pass of a trained network: stylizer, upscaler, tiling, colour, batches, video, distributed."""
