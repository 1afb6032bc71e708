"""Every version of one object as the API shows it (`kubectl get -w -o json`), with arrival times.

The e2e tests record status objects with it; the benchmark times when Flux reported Ready.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time

from localcluster.cluster import LocalCluster
from localcluster.toolchain import binaries


class KubectlWatch:
    def __init__(self, cluster: LocalCluster, resource: str, namespace: str, name: str) -> None:
        self.events: list[tuple[float, dict]] = []
        self.proc = subprocess.Popen(
            [
                str(binaries()["kubectl"]),
                "--kubeconfig",
                str(cluster.kubeconfig),
                "get",
                resource,
                "-n",
                namespace,
                name,
                "-w",
                "-o",
                "json",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        decoder, buf = json.JSONDecoder(), ""
        if self.proc.stdout is None:
            return
        for line in self.proc.stdout:
            buf += line
            try:
                obj, _ = decoder.raw_decode(buf.strip())
            except ValueError:
                continue  # an object spans several lines
            buf = ""
            self.events.append((time.monotonic(), obj))

    def stop(self, settle: float = 0.3) -> list[tuple[float, dict]]:
        time.sleep(settle)  # let the last event arrive
        self.proc.terminate()
        self.proc.wait()
        self.thread.join(timeout=5)
        return self.events
