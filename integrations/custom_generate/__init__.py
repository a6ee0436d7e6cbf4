"""The folder form of the ``custom_generate`` strategy (see ``generate.py`` here)."""
