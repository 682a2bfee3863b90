import sys

from melon_devkit.simday.cli import main

sys.exit(main())
