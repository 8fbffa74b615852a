"""``python -m tooldag.testing``: serve scripted OpenAI chat completions (see :mod:`.command`)."""

import sys

from .command import main

__all__: list[str] = []

sys.exit(main())
