"""Visualisation: heatmaps, overlays, PNG files and notebook display."""

from .images import grayscale_overlay, magnitude_map, resize_map, save_image, save_paths, show, to_unit

__all__ = ["grayscale_overlay", "magnitude_map", "resize_map", "save_image", "save_paths", "show", "to_unit"]
