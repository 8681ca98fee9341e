# ruff: noqa: N999 -- the vendor's package name
"""A fake of the vendor package ``pixelinkWrapper`` for labcam's tests. Never importable in production.

It lives under tests/fake_pixelink/ and is only on ``sys.path`` while the ``fake_sdk`` fixture
(tests/fixtures_pixelink.py) is active. Like the real package it exports ``PxLApi``; tests control
the simulated cameras through ``pixelinkWrapper.fake.FAKE``.

Importing it runs the same kind of import-time checks as the real package: the fake can be told to
fail here (OSError, ValueError, CalledProcessError, IndexError, as the real one does without the
native SDK) or to print the wrapper's spurious version WARNING to stdout.
"""

from .fake import FAKE as _FAKE

_FAKE.on_import()

from .pixelink import PxLApi  # noqa: E402 -- after the import-time checks, as in the real package

__all__ = ["PxLApi"]
