"""What the models are for, on any backend: ``generation`` (greedy/beam decoding with an encoder-decoder
artifact) and restoration (``tiling`` of large images, ``image_io`` for PNG/JPEG files)."""
