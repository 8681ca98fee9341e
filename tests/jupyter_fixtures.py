"""pytest-jupyter's fixtures, and ``on_jupyter_loop``, for the test modules that run a Jupyter server.

Import them into the test module with ``from jupyter_fixtures import *`` rather than loading
pytest-jupyter with ``pytest_plugins``: a plugin is registered for the whole session, and its
autouse fixtures (an event loop it closes after every test, a ServerApp cleanup) then break other
modules' tests that run a loop of their own (the Playwright end-to-end test). Imported, they apply
to the importing module only. Its hook that runs ``async def`` tests is not loaded either:
``on_jupyter_loop`` runs them on the server's loop.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from pytest_jupyter.jupyter_server import *  # noqa: F401,F403


def on_jupyter_loop(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an ``async def`` test on pytest-jupyter's event loop, where the Jupyter server runs."""
    sig = inspect.signature(test)
    takes_loop = "jp_asyncio_loop" in sig.parameters
    params = list(sig.parameters.values())
    if not takes_loop:
        params.append(inspect.Parameter("jp_asyncio_loop", inspect.Parameter.KEYWORD_ONLY))

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        loop = kwargs["jp_asyncio_loop"] if takes_loop else kwargs.pop("jp_asyncio_loop")
        loop.run_until_complete(test(*args, **kwargs))

    run.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]  # pytest reads fixtures from it
    return run
