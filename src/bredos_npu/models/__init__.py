"""Model files: reading and validating .tflite files, labels, the bundled default."""
