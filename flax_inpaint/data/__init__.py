"""Data: image files (the one decoder, users' files), hole masks, windows around holes, and the tf.data pipeline."""
