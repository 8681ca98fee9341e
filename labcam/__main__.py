"""``python -m labcam ...`` is the ``labcam`` command."""

from labcam.cli import main

raise SystemExit(main())
