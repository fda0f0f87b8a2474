"""Named ImageNet models: where their weights come from and how they become `.tflite` files."""
