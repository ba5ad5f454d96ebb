"""`python3 hack/fleetstack COMMAND` (what `hack/stack` runs)."""

import sys
from pathlib import Path

# Run as a folder, Python puts the folder itself first on the path, where its modules (redis,
# kafka, kubernetes) would pass for top-level ones. Put hack/ there instead: the package is
# then `fleetstack`, as when a hack/ script imports it.
if not __package__:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from fleetstack.cli import main

sys.exit(main())
