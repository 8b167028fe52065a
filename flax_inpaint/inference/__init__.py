"""Inference: the Inpainter, crops around holes, the export format."""
