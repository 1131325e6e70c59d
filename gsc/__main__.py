import sys

from gsc.cli import main

sys.exit(main())
