"""The ``sourceip`` command line: one module per command, errors mapped to exit codes in main."""
