"""What paircustom reads and writes: the style file (``style_file``), other tools' LoRA layouts (``layouts``),
images and atomic writes (``images``).
"""
