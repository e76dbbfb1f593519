"""``python -m registry``: run the schema registry (see ``registry.cli``)."""

from registry.cli import main

if __name__ == "__main__":
    main()
