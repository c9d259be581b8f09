"""Constants shared across the package (each defined here only)."""

# Label value of pixels that carry no class (VOC's object borders, padding,
# pseudo-labels left unassigned). Ignored by every loss and metric.
VOID_LABEL = 255

# ImageNet statistics in RGB 0..255: backbone preprocessing, and the colour
# used to pad images (zero after mean subtraction).
IMAGENET_MEAN_RGB = (123.675, 116.28, 103.53)
IMAGENET_STD_RGB = (58.395, 57.12, 57.375)

# What the L-Net's agnostic head is trained on (--lnet_mask_view): random crops of
# --crop_size, or crops as large as the canonical image (whole objects and their surround).
MASK_VIEWS = ("crop", "image")
