"""Fixtures the build tests share (test_build, test_build_seccomp, test_build_userns); modules with a
registry of another kind (test_bundles, test_registry, test_scan) define their own ``registry``."""

from __future__ import annotations

import pytest

from testbed.registry import push_busybox_base, start_registry


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A registry on loopback with a busybox base pushed (``registry.base``), one per module."""
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    reg.base = push_busybox_base(reg)
    yield reg
    reg.stop()
