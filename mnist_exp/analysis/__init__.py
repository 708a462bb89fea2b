"""What a run shows about itself: the test report callback (report.py) with its figures drawn in PIL
(figures.py) and matplotlib (plots.py), a look inside the model (insight.py), Integrated Gradients
(attributions.py) and the corruptions of robustness=true (robustness.py). May import the training run
(calibration's bins), the records, models and data, and the ground; never a command or the lifecycle."""
