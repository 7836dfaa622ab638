"""guestgraph's domain: pure Python rules and source mappings.

Nothing here performs I/O or imports a framework; ``tests/test_layers.py`` enforces it.
"""
