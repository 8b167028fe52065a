"""Weights from elsewhere and ours: VGG16/LPIPS conversion, fetch and cache, released models."""
