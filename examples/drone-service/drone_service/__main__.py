"""python -m drone_service: serve on $PORT (8080)."""

import os

from .app import serve

if __name__ == "__main__":
    server = serve(port=int(os.environ.get("PORT", "8080")))
    print(f"drone-service listening on :{server.server_address[1]}", flush=True)
    server.serve_forever()
