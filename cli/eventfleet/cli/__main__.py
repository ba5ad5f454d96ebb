import sys

from eventfleet.cli import main

sys.exit(main())
