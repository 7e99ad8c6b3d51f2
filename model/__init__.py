"""TinyLLM model core: the network, tokenizer, checkpoint format, sampling, quantization and engine.

This package imports nothing from ``server`` or ``training``; both build on it.
"""
