"""``python -m nst``: the same entry point as the ``nst`` console script."""

from nst.cli import main

if __name__ == "__main__":
    main()
