"""Style guidance (paper Eqs. 10-11): one denoising step (``guide``), the pipeline of every family
(``pipeline``, ``flow``), stylising existing images (``stylize``) and ControlNet (``control``).
"""
