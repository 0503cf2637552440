"""Entry point: `python train.py upsampler=tconv` (see configs/ and README.md)."""
from upsample_zoo.train import main

if __name__ == "__main__":
    main()
