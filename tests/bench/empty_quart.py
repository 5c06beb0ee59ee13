"""An empty Quart route served as `voxline serve` serves the app (the same uvicorn settings,
httptools and uvloop): the baseline `bench_http.py` reports each figure against.

    .venv/bin/python -m tests.bench.empty_quart PORT
"""

from __future__ import annotations

import sys

from quart import Quart

from control.commands import _run_loop, _server


def create_app() -> Quart:
    app = Quart("empty", static_folder=None)

    @app.get("/empty")
    async def empty() -> str:
        return ""

    return app


def main() -> int:
    port = int(sys.argv[1])
    _run_loop(_server(create_app(), "127.0.0.1", port).serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
