"""Arithmetic reasoning: chain format, answer extraction, vote, step and chain checks, calculator.

The domain the server's reasoning mode and the training data share. It sits between ``model`` (which it may
import) and ``server``/``training`` (which import it): the chain's phrases are written by the training
generators and read by the checks here, so they live in one module (``reasoning.chain_format``).
"""
