"""Pytest fixtures for the fault-injecting proxy (tests/faultproxy.py) in front of the demo file server.

Loaded from tests/conftest.py with ``pytest_plugins = ["tests.faults_fixtures"]``.

* ``fault_proxy_server`` (session): one proxy process in front of ``served_world.files_url``.
* ``fault_proxy`` (function): the same proxy with no rules and an empty log at the start of each test
  (and cleared again after it), so tests never see each other's faults.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from msc_france.demo.server import DemoServer
from tests import faultproxy


@pytest.fixture(scope="session")
def fault_proxy_server(served_world: DemoServer) -> Iterator[faultproxy.FaultProxy]:
    with faultproxy.fault_proxy(served_world.files_url) as proxy:
        yield proxy


@pytest.fixture
def fault_proxy(fault_proxy_server: faultproxy.FaultProxy) -> Iterator[faultproxy.FaultProxy]:
    fault_proxy_server.clear()
    yield fault_proxy_server
    fault_proxy_server.clear()
