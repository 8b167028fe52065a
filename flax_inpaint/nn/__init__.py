"""The networks: the U-Net, its fast-path layers, the coarse fills, the VGG16 module."""
