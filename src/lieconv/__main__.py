"""``python -m lieconv ...`` (same as the ``lieconv`` command)."""
from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
