import sys

from postloc.cli import main

sys.exit(main())
