"""Research probes: one-off measurements behind the notes in ``docs/results.md`` and ``docs/research``, run from a
checkout as ``python -m experiments.<name>``; not part of the installed package (see ``experiments/README.md``)."""
