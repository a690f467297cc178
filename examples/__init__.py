"""Scripts that reproduce the background documents' experiments (docs/experiments.md).

Each is `python examples/NAME.py [--out DIR]`: it writes its PNG(s) into DIR and
prints its numbers; its functions take reduced sizes so that tests/test_examples.py
can assert the claim each figure makes.
"""
