"""The local web viewer (``tooldag ui``, ``pip install 'tooldag[ui]'``): the runs of a run store
in the browser, each one's graph coloured by status and updated live, whichever process runs it.

:mod:`~tooldag.web.app` is the Starlette app (pages, JSON API, event stream, the token and
origin checks), :mod:`~tooldag.web.live` what it reads from the store,
:mod:`~tooldag.web.control` the resume and cancel buttons, :mod:`~tooldag.web.server` the uvicorn
server on 127.0.0.1. The page's script and style are in ``static/``, shipped in the wheel: the
page loads nothing from anywhere else. The graph is :mod:`tooldag.plan.svg`'s drawing, the same
as a notebook shows.
"""

from .app import Viewer, create_app
from .server import ViewerServer, open_browser

__all__ = ["Viewer", "ViewerServer", "create_app", "open_browser"]
