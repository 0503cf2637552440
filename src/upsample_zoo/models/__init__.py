"""Models that take their upsampler as configuration."""
