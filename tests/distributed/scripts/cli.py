"""`convnet train ...` as the console script runs it (argv from the command line)."""

import sys

from convnet.cli import main

sys.exit(main(sys.argv[1:]))
