import sys

from melon_devkit.soak.cli import main

sys.exit(main())
