"""Metrics: mIoU helpers, FID, checkerboard score."""
