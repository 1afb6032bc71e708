"""A small JSON web service on the standard library: the app the catalog's pipelines ship.

    GET /          service name, version and greeting (what the demo shows changing)
    GET /healthz   liveness/readiness for Kubernetes
    GET /drones    the fleet, optionally ?status=flying|docked
"""

from __future__ import annotations

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from . import __version__

GREETING = "Drones inspecteren de dijken"
FLEET = [
    {"id": "dr-01", "status": "flying", "dike": "Lekdijk"},
    {"id": "dr-02", "status": "docked", "dike": "Diefdijk"},
    {"id": "dr-03", "status": "flying", "dike": "Lingedijk"},
]
STATUSES = {"flying", "docked"}


def route(path: str) -> tuple[int, dict]:
    """(HTTP status, JSON body) for a GET of ``path``; pure, so tests need no server."""
    url = urlsplit(path)
    if url.path == "/":
        return 200, {"service": "drone-service", "version": os.environ.get("APP_VERSION", __version__),
                     "message": GREETING}
    if url.path == "/healthz":
        return 200, {"status": "ok"}
    if url.path == "/drones":
        wanted = parse_qs(url.query).get("status", [None])[0]
        if wanted is not None and wanted not in STATUSES:
            return 400, {"error": f"unknown status {wanted!r}: use one of {', '.join(sorted(STATUSES))}"}
        return 200, {"drones": [d for d in FLEET if wanted in (None, d["status"])]}
    return 404, {"error": f"no such path {url.path!r}"}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        status, body = route(self.path)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: one line per request would drown the pod log


def serve(host: str = "0.0.0.0", port: int = 8080) -> ThreadingHTTPServer:
    return ThreadingHTTPServer((host, port), Handler)
