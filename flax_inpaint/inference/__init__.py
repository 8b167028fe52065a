"""Inference: the Inpainter and the export format."""
