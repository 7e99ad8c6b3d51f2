"""TinyLLM training: from raw text to the checkpoint the server loads, on a CPU.

Pipeline (each step a ``python -m training`` command): corpus/chat/reasoning data → tokenizer → data
shards → pretrain → SFT → reasoning SFT → eval → export. Builds on ``model`` only; never imports ``server``.
"""
