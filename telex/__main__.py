"""``python -m telex`` is the ``telex`` command."""

from .cli import main

raise SystemExit(main())
