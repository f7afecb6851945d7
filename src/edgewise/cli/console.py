"""``edgewise console ...``: the web console, from the terminal.

``login-link`` asks the cloud for a one-time login link for the token in use (``EDGEWISE_API_TOKEN``, else the
admin token of ``--data``) and prints its full URL: opening it in a browser logs in as that token, once, within
ten minutes. The URL holds a random code, never the token.
"""

from __future__ import annotations

import typer

from edgewise.cli.api import ApiOption, DataOption, api_client, api_url, request

app = typer.Typer(help="The web console served by the cloud at /console/.", no_args_is_help=True)


@app.command("login-link")
def login_link(api: ApiOption = None, data: DataOption = None) -> None:
    """Print a one-time console login link (valid 10 minutes) for the token in use."""
    with api_client(api, data) as client:
        link = request(client, "POST", "/console/login-links")
    print(api_url(api, data).rstrip("/") + str(link["url"]))
