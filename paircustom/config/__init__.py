"""Settings and their checks, the lowest layer: every default lives here once (``train.TrainConfig``,
``generate.GENERATE``), with the command-line options built from them (``options``), the number and path checks
(``checks``) and models by name before anything loads (``model_names``).
"""
