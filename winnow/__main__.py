"""`python -m winnow ...`: the same command line as `winnow ...`."""

from winnow.cli import main

if __name__ == "__main__":
    main()
