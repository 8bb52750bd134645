"""``python -m lieconv ...`` (same as the ``lieconv`` command)."""

from .cli import main

__all__: list[str] = []

if __name__ == "__main__":
    raise SystemExit(main())
