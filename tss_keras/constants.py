"""Constants shared across the package (each defined here only)."""

# Label value of pixels that carry no class (VOC's object borders, padding,
# pseudo-labels left unassigned). Ignored by every loss and metric.
VOID_LABEL = 255

# ImageNet statistics in RGB 0..255: backbone preprocessing, and the colour
# used to pad images (zero after mean subtraction).
IMAGENET_MEAN_RGB = (123.675, 116.28, 103.53)
IMAGENET_STD_RGB = (58.395, 57.12, 57.375)
