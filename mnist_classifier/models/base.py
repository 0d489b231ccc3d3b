"""Building blocks the model families share."""

from __future__ import annotations


def image_shape(input_shape: tuple[int, ...]) -> str | None:
    """None for (channels, height, width) images; otherwise why a model that needs images cannot
    read this input."""
    if len(input_shape) != 3:
        return f"it reads images (channels, height, width), but this dataset's rows are {len(input_shape)}-D " \
               f"{tuple(input_shape)}"
    return None
