"""``minsnr-app``: start the app in a Python whose small objects come from the C allocator.

Python's own small-object allocator keeps a memory arena as long as one object in it lives, so the state of many
short sessions, freed once they expire, stays in the server's memory; with ``PYTHONMALLOC=malloc`` the freed memory
can be handed back (``app.memory.release_memory``). The setting is read when Python starts, hence this small
module: it sets it and starts ``python -m app.main`` in its place, before gradio or torch are imported.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    if os.environ.get("PYTHONMALLOC"):  # chosen by the user, or already started through here
        from app.main import main as run_app

        run_app()
        return
    os.environ["PYTHONMALLOC"] = "malloc"
    os.execv(sys.executable, [sys.executable, "-m", "app.main", *sys.argv[1:]])


if __name__ == "__main__":
    main()
