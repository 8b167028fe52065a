"""Image files (decoding, users' files) and the tf.data pipeline (the only TensorFlow imports)."""
