"""matplotlib for files only, imported when the first figure is drawn (importing it costs about half
a second, which a run should not pay before its first training step)."""


def pyplot():
    """matplotlib.pyplot with the Agg backend: figures go to files, never to a window."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
