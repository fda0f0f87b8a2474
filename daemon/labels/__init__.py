"""What the ImageNet classes are: the class index, friendly names, categories."""
