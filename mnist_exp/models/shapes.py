"""Image shapes that several parts of the project agree on."""

MNIST_INPUT_SHAPE = [
    1,
    28,
    28,
]  # [channels, height, width] of MNIST digits; what a checkpoint written before input_shape was saved takes
