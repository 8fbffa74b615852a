"""``python -m tooldag.testing``: serve scripted OpenAI chat completions (see ``server.main``)."""

import sys

from .server import main

__all__: list[str] = []

sys.exit(main())
