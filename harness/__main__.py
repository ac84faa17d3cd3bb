import sys

from oomlab.cli.main import main

sys.exit(main())
