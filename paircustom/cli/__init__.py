"""The ``paircustom`` command line: ``main`` (the subcommands; the console script ``paircustom.cli.main:main``),
``generate`` (``generate`` and ``stylize``), ``batch`` ((prompt, seed) jobs of ``generate --prompts-file/--seeds``)."""

from .interrupt import install_for_program

install_for_program()  # Ctrl-C is one line from here on, imports included (only when paircustom is the program)
