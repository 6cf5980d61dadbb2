"""``paircustom ui``: the web app (Gradio, the ``ui`` extra).  ``studio`` holds the logic, ``app`` the page."""
