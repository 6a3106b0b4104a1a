"""A deliberately naive coordinator: it starts aggregating as soon as the first region is back.

The shipped scenarios catch it by name:
    pytest --distproc-scenarios --distproc-coordinator scenarios/adapters/naive.py:NaiveCoordinator
fails with "the coordinator reported an illegal transition: illegal transition for task
'aggregate-results': BLOCKED -> IN_PROGRESS; ... (still open: process-region-b, process-region-c)".
"""

from __future__ import annotations

import json
import os
from typing import Any

from pytest_distproc.attempt import stats as summary


class NaiveCoordinator:
    def run(self, harness: Any) -> None:
        children = {}
        for region in harness.regions:
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read_fd)
                try:
                    os.write(write_fd, json.dumps(harness.process(region, 1)).encode())
                finally:
                    os._exit(0)
            os.close(write_fd)
            children[region] = (read_fd, pid)
            harness.record(f"process-region-{region.lower()}", "IN_PROGRESS", pid=pid)
        results = {}
        for index, (region, (read_fd, pid)) in enumerate(children.items()):
            payload = b""
            while chunk := os.read(read_fd, 65536):
                payload += chunk
            os.close(read_fd)
            os.waitpid(pid, 0)
            results[region] = json.loads(payload)
            harness.record(f"process-region-{region.lower()}", "COMPLETE", pid=pid)
            if index == 0:
                # BUG: the aggregation starts before every region finished.
                harness.record("aggregate-results", "IN_PROGRESS")
        harness.record("aggregate-results", "COMPLETE")
        harness.result(regions=results, total=summary.merge(results.values()))
