import sys

from tooldag.ui.cli import main

sys.exit(main())
