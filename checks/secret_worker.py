"""The secret scan's worker processes: detect-secrets over the paths sent, findings back as JSON.

checks/secrets.py starts one process, `python -c ... checks.secret_worker.main IN OUT [IN OUT
...]`, given a pair of pipes per worker (file descriptors: paths in, findings out). It imports
detect-secrets and our plugins once, then forks a sibling for each further pair: the siblings
share those imports (a fresh interpreter pays ~0.3 s of CPU for them) and fork from a process
that runs no thread (issue 11). Each worker says it is ready (`"ready"`), then answers each
path, one JSON value a line, with `[path, [finding, ...]]`, each finding a PotentialSecret's
own `json()` (its hash, never its value). At the end of its paths (the scan is done, or opsctl
is gone, SIGKILL included) a worker exits; the first one waits for its siblings first.

This module imports only what the scan needs (not opsctl, not the check framework).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

PLUGINS_FILE = Path(__file__).with_name("secret_plugins.py")
OUR_PLUGINS = ("TwilioAuthTokenDetector", "GoogleApiKeyDetector", "NotionTokenDetector")
READY = "ready"


def scan_settings() -> dict[str, Any]:
    """Every built-in plugin and ours; no filter that calls vendors' APIs."""
    from detect_secrets.settings import default_settings

    with default_settings() as settings:
        plugins: list[dict[str, Any]] = settings.json()["plugins_used"]
    return {
        "plugins_used": [
            *plugins,
            *({"name": n, "path": PLUGINS_FILE.as_uri()} for n in OUR_PLUGINS),
        ]
    }


def configure() -> None:
    """This process's detect-secrets set up as checks/secrets.py `our_settings` sets up its own:
    in a fresh interpreter, the same as its transient_settings(scan_settings())."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.settings import configure_settings_from_baseline

    configure_settings_from_baseline(scan_settings())
    # detect-secrets caches its plugin classes and its cache_bust() misses this cache.
    get_mapping_from_secret_type_to_class.cache_clear()


def serve(requests: int, replies: int) -> None:
    """Answer each path read from `requests` with its findings on `replies`, until end of file."""
    from detect_secrets.core.scan import scan_file

    with (
        open(requests, encoding="utf-8") as paths,
        open(replies, "w", encoding="utf-8") as out,
    ):
        out.write(json.dumps(READY) + "\n")
        out.flush()
        for line in paths:
            path = json.loads(line)
            found = [secret.json() for secret in scan_file(path)]
            out.write(json.dumps([path, found]) + "\n")
            out.flush()


def _keep_only(mine: tuple[int, int], pairs: list[tuple[int, int]]) -> None:
    """Close every other worker's pipes: a worker that dies must be seen to (end of file on
    its replies), which a sibling holding them open would hide."""
    for pair in pairs:
        if pair != mine:
            for fd in pair:
                os.close(fd)


def main() -> None:
    """Configure, fork a sibling per further pair of pipes, serve the first pair here."""
    from checks.children import die_with_parent

    fds = [int(arg) for arg in sys.argv[1:]]
    pairs = list(zip(fds[::2], fds[1::2], strict=True))
    configure()
    from detect_secrets.core.scan import scan_file  # noqa: F401 - imported once, before forking

    leader, siblings = os.getpid(), []
    for pair in pairs[1:]:
        pid = os.fork()
        if pid == 0:  # a sibling: serve its pair, then leave without running the leader's code
            code = 1
            try:
                die_with_parent(parent=leader)  # the group's SIGKILL aside, should it die alone
                _keep_only(pair, pairs)
                serve(*pair)
                code = 0
            finally:
                os._exit(code)
        siblings.append(pid)
    _keep_only(pairs[0], pairs)
    serve(*pairs[0])
    for pid in siblings:  # its siblings die with it: let them finish their last file
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
