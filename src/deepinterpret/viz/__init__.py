"""Visualisation: heatmaps, overlays, PNG files, figures, HTML reports and notebook display."""

from .explanation import (
    MAGNITUDE_CMAP,
    SIGNED_CMAP,
    ImageExplanation,
    Picture,
    explanation_figure,
    map_for_display,
)
from .generation import generation_html
from .images import (
    attribution_picture,
    grayscale_overlay,
    magnitude_map,
    resize_map,
    save_image,
    save_paths,
    show,
    to_unit,
)
from .influence import influence_figure
from .report import ReportRow, comparison_figure, heatmap_overlay, html_report, perturbation_curves
from .text import TextReport, show_text, text_html, text_report, token_colour

__all__ = [
    "MAGNITUDE_CMAP",
    "SIGNED_CMAP",
    "ImageExplanation",
    "Picture",
    "explanation_figure",
    "map_for_display",
    "ReportRow",
    "attribution_picture",
    "comparison_figure",
    "generation_html",
    "grayscale_overlay",
    "heatmap_overlay",
    "influence_figure",
    "html_report",
    "magnitude_map",
    "perturbation_curves",
    "resize_map",
    "save_image",
    "save_paths",
    "show",
    "show_text",
    "text_html",
    "text_report",
    "TextReport",
    "token_colour",
    "to_unit",
]
