"""`legion serve`: the OpenAI/Anthropic-compatible gateway."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    @cli.command()
    @click.option("--host", default=None, help="Bind address (default: llm.api.host, 127.0.0.1).")
    @click.option("--port", default=None, type=int, help="Port (default: llm.api.port, 4567).")
    @click.option("--allow-unauthenticated", is_flag=True,
                  help="Allow binding a non-loopback address with auth disabled.")
    def serve(host: str | None, port: int | None, allow_unauthenticated: bool) -> None:
        """Run the gateway: OpenAI- and Anthropic-compatible API, native API, /metrics.

        \b
        Examples:
          legion serve
          legion serve --port 8080
          OPENAI_BASE_URL=http://127.0.0.1:4567/v1 python my_openai_app.py
        """
        from legion_core.cli.context import make_legion
        from legion_core.server import serve as run_server

        run_server(make_legion(), host=host, port=port, allow_unauthenticated=allow_unauthenticated)
