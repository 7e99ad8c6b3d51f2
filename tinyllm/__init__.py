"""The ``tinyllm`` command: one entry point for serving (``server``) and training (``training``)."""
