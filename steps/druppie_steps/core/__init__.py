"""Plumbing shared by every step: options, results, logging, errors and secret redaction.

Kept free of heavy imports so that ``druppie-step --help`` stays fast.
"""
