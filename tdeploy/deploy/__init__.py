"""Layer 6 -- what a user runs: evaluation, the tasks, doctor, inspect and the command line.

- ``evaluate/``: validate (images, seq2seq), bench, reports, task metrics, Polygraphy I/O;
- ``tasks/``: generation (encoder-decoder) and restoration (tiling, image files);
- ``backends.py``: the runner of each backend name; ``doctor.py``; ``inspect.py``;
- ``cli/``: one module per command, plus ``main.py`` with the error policy.

May import every earlier layer: errors/artifact (0), plugins (1), models (2), runtime (3), export (4),
tensorrt (5).
"""
