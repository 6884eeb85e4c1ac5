"""One module per GradBench eval: ``problem``, ``FUNCTIONS``, ``inputs``, ``SIZES``, ``TEST_SIZES``.

See :mod:`diffkit.gradbench.jobs` for the contract each module follows.
"""
