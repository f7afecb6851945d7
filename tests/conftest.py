"""What every test shares: one terminal width for everything the CLI prints."""

from __future__ import annotations

import os

# Rich reads COLUMNS when a console is made, and the CLI makes its consoles when its modules are imported: set
# here, before any test module imports them, every table and message renders at one width whatever order the
# tests run in (in pytest-xdist workers too) and however long their temporary paths are.
os.environ["COLUMNS"] = "200"
