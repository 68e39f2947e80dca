"""The perceptual loss and the network behind it, together.

- ``arch``: the VGG16/19 layer table and the weight sources' input conventions;
- ``sources``: where weights come from (imagenet, hed, random, a file);
- ``hed``: the offline route to real VGG16 weights (HED's, converted once and cached);
- ``vgg``: ``VGGFeatures``, a frozen VGG tapping named layers, normalizing its own input;
- ``losses``: content, Gram-matrix style and TV terms, and ``PerceptualLoss`` that composes them.
"""
