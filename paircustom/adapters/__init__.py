"""The pair LoRA (paper Sec. 3.2): seeded orthonormal bases (``basis``) and the adapter layers with their
per-row routing (``layers``).
"""
