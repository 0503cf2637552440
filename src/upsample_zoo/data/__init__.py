"""Data modules: VOC segmentation, CIFAR-10 / image folders, and their synthetic stand-ins."""
