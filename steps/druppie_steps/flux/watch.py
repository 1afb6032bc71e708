"""Follow one Flux object through the API with a watch (not a sleep loop) until a decision is made.

A closed watch, an expired resourceVersion (410) or a restarted apiserver is not a failure: we
re-read the object and watch again from there, until the deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from ..core import log
from ..core.errors import StepError
from ..core.kube import KubeObject

if TYPE_CHECKING:
    from kubernetes.client import ApiClient
    from kubernetes.client.exceptions import ApiException

T = TypeVar("T")
V = TypeVar("V")  # a verdict, whatever the caller decides with

# kind -> (group, version, plural). Only git sources: a commit sha never matches an OCIRepository's
# or Bucket's digest revision, and the flux-wait RBAC reads nothing else.
KINDS = {
    "GitRepository": ("source.toolkit.fluxcd.io", "v1", "gitrepositories"),
    "Kustomization": ("kustomize.toolkit.fluxcd.io", "v1", "kustomizations"),
}
WATCH_WINDOW_SECONDS = 30  # the server ends each watch after this; we then re-check the deadline


class WaitTimeoutError(Exception):
    """The deadline passed; carries the last object seen."""

    def __init__(self, last: KubeObject | None) -> None:
        super().__init__("timeout")
        self.last = last


@dataclass
class FluxObject:
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


class FluxApi:
    def __init__(self, api_client: ApiClient) -> None:
        from kubernetes import client

        self.custom = client.CustomObjectsApi(api_client)
        self.reconnects = 0

    def _coords(self, ref: FluxObject) -> tuple[str, str, str]:
        if ref.kind not in KINDS:
            raise StepError(f"unsupported source kind {ref.kind!r} (supported: {', '.join(KINDS)})")
        return KINDS[ref.kind]

    def get(self, ref: FluxObject) -> KubeObject | None:
        from kubernetes.client.exceptions import ApiException

        group, version, plural = self._coords(ref)
        try:
            return _object(self.custom.get_namespaced_custom_object(group, version, ref.namespace, plural, ref.name))
        except ApiException as err:
            if err.status == 404:
                return None
            if err.status in (401, 403):
                raise StepError(f"not allowed to read {ref}: {_api_error(err)}") from err
            raise  # 5xx while the apiserver restarts: the caller retries

    def request_reconcile(self, ref: FluxObject, stamp: str, deadline: float) -> None:
        """What `flux reconcile` does: a fresh reconcile.fluxcd.io/requestedAt annotation."""
        from kubernetes.client.exceptions import ApiException

        group, version, plural = self._coords(ref)
        body = {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": stamp}}}

        def patch() -> KubeObject:
            try:
                return _object(
                    self.custom.patch_namespaced_custom_object(group, version, ref.namespace, plural, ref.name, body)
                )
            except ApiException as err:
                if err.status in (401, 403, 404, 422):
                    raise StepError(f"cannot annotate {ref} to request a reconcile: {_api_error(err)}") from err
                raise

        self._retrying(patch, deadline, None)

    def follow(
        self, ref: FluxObject, decide: Callable[[KubeObject], V], done: Callable[[V], bool], deadline: float
    ) -> tuple[KubeObject, V]:
        """Watch ``ref``; call ``decide`` on every version of it; return when ``done(verdict)``."""
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        group, version, plural = self._coords(ref)
        obj = self.get_retrying(ref, deadline, None)
        verdict = decide(obj)
        if done(verdict):
            return obj, verdict
        resource_version = obj["metadata"]["resourceVersion"]
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WaitTimeoutError(obj)
            try:
                stream = watch.Watch().stream(
                    self.custom.list_namespaced_custom_object,
                    group,
                    version,
                    ref.namespace,
                    plural,
                    field_selector=f"metadata.name={ref.name}",
                    resource_version=resource_version,
                    allow_watch_bookmarks=True,
                    timeout_seconds=max(1, int(min(remaining, WATCH_WINDOW_SECONDS))),
                    _request_timeout=min(remaining, WATCH_WINDOW_SECONDS) + 10,
                )
                for event in stream:
                    kind, new = event["type"], event["object"]
                    if kind == "ERROR":
                        raise ApiException(status=new.get("code", 500), reason=new.get("message", ""))
                    resource_version = new["metadata"]["resourceVersion"]
                    if kind == "BOOKMARK":
                        continue
                    if kind == "DELETED":
                        raise StepError(f"{ref} was deleted while waiting")
                    obj = new
                    verdict = decide(obj)
                    if done(verdict):
                        return obj, verdict
                    if time.monotonic() >= deadline:
                        raise WaitTimeoutError(obj)
            except ApiException as err:
                if err.status == 410:  # resourceVersion too old: re-read and watch from now
                    obj = self.get_retrying(ref, deadline, obj)
                    resource_version = obj["metadata"]["resourceVersion"]
                elif err.status in (401, 403):
                    raise StepError(f"not allowed to watch {ref}: {_api_error(err)}") from err
                else:
                    obj, resource_version = self._resume(ref, deadline, obj, f"HTTP {err.status}")
            except Exception as err:
                if isinstance(err, (StepError, WaitTimeoutError)):
                    raise
                obj, resource_version = self._resume(ref, deadline, obj, type(err).__name__)
            else:
                continue
            verdict = decide(obj)
            if done(verdict):
                return obj, verdict

    def _resume(self, ref: FluxObject, deadline: float, last: KubeObject, why: str) -> tuple[KubeObject, str]:
        self.reconnects += 1
        log.progress(f"lost the watch on {ref} ({why}); resuming")
        obj = self.get_retrying(ref, deadline, last)
        return obj, obj["metadata"]["resourceVersion"]

    def get_retrying(self, ref: FluxObject, deadline: float, last: KubeObject | None = None) -> KubeObject:
        """Read the object, waiting out an unreachable or restarting apiserver until the deadline."""
        obj = self._retrying(lambda: self.get(ref), deadline, last)
        if obj is None:
            raise StepError(f"{ref} not found")
        return obj

    def _retrying(self, call: Callable[[], T], deadline: float, last: KubeObject | None) -> T:
        delay = 0.2
        while True:
            try:
                return call()
            except StepError:
                raise
            except Exception as err:  # connection refused / 5xx while the apiserver restarts
                if delay == 0.2:
                    self.reconnects += 1
                    log.progress(f"lost the connection to the API server ({type(err).__name__}); resuming")
                if time.monotonic() + delay >= deadline:
                    raise WaitTimeoutError(last) from err
                time.sleep(delay)
                delay = min(delay * 2, 2.0)


def _object(value: object) -> KubeObject:
    """What the API returned, which for a custom object is a JSON object."""
    if not isinstance(value, dict):
        raise StepError(f"the API server returned {type(value).__name__}, not an object")
    return value


def _api_error(err: ApiException) -> str:
    import json

    try:
        return str(json.loads(err.body or "").get("message", err.reason))
    except (TypeError, ValueError, AttributeError):
        return f"HTTP {err.status} {err.reason}"
