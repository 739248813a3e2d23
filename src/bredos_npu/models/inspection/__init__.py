"""Static inspection of .tflite files: what Teflon would run on the NPU, MACs, partitions."""
