import sys

from tooldag.cli import main

sys.exit(main())
