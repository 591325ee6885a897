"""Before asking the Hugging Face Hub: say at once when the machine is offline.

Without a network huggingface_hub spends tens of seconds in DNS timeouts and retries before its error
(23 s measured for one repo id). ``hub_access`` decides first, in at most ``PROBE_SECONDS``:

- ``HF_HUB_OFFLINE`` set (or ``local_files_only``): the cache only; a repo that is not cached is an error
  naming the variable;
- otherwise the Hub's host must resolve: if it does not, a cached repo is used from the cache (with a
  warning) and an uncached one is an error saying the machine is offline and which variable skips the
  network. Behind a proxy (``HTTPS_PROXY``...) the local resolver says nothing about reachability, so
  the probe is skipped.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from urllib.parse import urlparse

logger = logging.getLogger(__name__)

PROBE_SECONDS = 2.0
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy")


class HubOfflineError(OSError):
    """The Hub cannot be asked (offline mode, or no network) and the repo is not in the cache."""


def offline_mode() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it (also when set after it was imported)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE"):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - a hard dependency
        return False
    return bool(constants.HF_HUB_OFFLINE)


def hub_host() -> str:
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    return urlparse(endpoint).hostname or "huggingface.co"


def resolves(host: str, timeout: float = PROBE_SECONDS) -> bool:
    """Whether ``host`` resolves within ``timeout`` seconds (getaddrinfo has no timeout of its own)."""
    result = []

    def probe():
        try:
            socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, name="edge_sched-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def cached(repo_id: str, filename: str, *, revision=None, cache_dir=None) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return False
    found = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir, revision=revision)
    return isinstance(found, str)


def hub_access(repo_id: str, filename: str = "model_index.json", *, revision=None, cache_dir=None,
               local_files_only: bool = False) -> bool:
    """The ``local_files_only`` to pass to huggingface_hub for ``repo_id`` (whose ``filename`` shows it is
    cached), decided without waiting on the network; raises HubOfflineError when it cannot be had."""
    where = f" ({cache_dir})" if cache_dir else ""
    label = repo_id + (f"@{revision}" if revision else "")
    in_cache = cached(repo_id, filename, revision=revision, cache_dir=cache_dir)
    if local_files_only or offline_mode():
        if not in_cache:
            why = "HF_HUB_OFFLINE is set" if offline_mode() else "local_files_only is set"
            raise HubOfflineError(f"{label}: not in the Hugging Face cache{where} and {why}, so nothing is "
                                  "downloaded; unset HF_HUB_OFFLINE on a connected machine to download it, or give a "
                                  "local folder")
        return True
    if any(os.environ.get(v) for v in _PROXY_VARIABLES):
        return False
    host = hub_host()
    if resolves(host):
        return False
    if in_cache:
        logger.warning("%s: this machine looks offline (%s does not resolve); using the cached copy", label, host)
        return True
    raise HubOfflineError(f"{label}: this machine is offline ({host} does not resolve) and the repo is not in the "
                          f"Hugging Face cache{where}; connect it, or copy the model folder here and give its path "
                          "(set HF_HUB_OFFLINE=1 to use only the cache, without trying the network)")
