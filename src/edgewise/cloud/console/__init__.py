"""The web console: server-rendered pages (Jinja2 + htmx) over the cloud's own REST API, behind a login.

:func:`edgewise.cloud.console.app.mount_console` serves it from the API's app; see console/app.py for how a
page is added.
"""
