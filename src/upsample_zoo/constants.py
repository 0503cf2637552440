"""Numbers every part of the zoo must agree on, in one place."""

VOID = 255  # PASCAL VOC's label for the border around objects and for padding: ignored by the loss and metrics
# torchvision's ImageNet normalisation, used for VOC inputs and undone for figures
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
