"""The ``deploy`` command line: one module per command, ``options.py`` for the shared parsers, and
``main.py`` with the group and the error policy (one line, exit 2, for every error a user can fix)."""
