"""The ``paircustom`` command line: ``main`` (the subcommands; the console script ``paircustom.cli.main:main``),
``generate`` (``generate`` and ``stylize``), ``batch`` ((prompt, seed) jobs of ``generate --prompts-file/--seeds``)."""
