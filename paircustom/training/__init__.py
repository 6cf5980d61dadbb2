"""Pair training (paper Eqs. 6-8): the losses (``objective``), the loop (``trainer``), what a run writes
(``outputs``) and its resumable state (``checkpoint``).
"""
