"""Pretrained weights from the Hugging Face hub, with or without network.

open_clip and timm download their weights through ``huggingface_hub``, which
retries a request that cannot reach the hub five times (1 + 2 + 4 + 8 + 8 s
back-off), for each file it looks for: without network, a CLIP or timm build
whose weights are not in the local cache waits about 48 s before it fails.
Its offline mode (``HF_HUB_OFFLINE=1``) skips the network: cached weights
load and missing ones fail at once. :func:`use_hub_offline_if_unreachable`
turns that mode on by itself, once per process, when a short probe finds the
hub unreachable.
"""
import os
import os.path as osp
import threading
from typing import Dict, Optional

from huggingface_hub import constants, get_session
from huggingface_hub.utils import LocalEntryNotFoundError
from mmengine.logging import print_log

# Endpoint -> why it is unreachable ('' when it answered), once per process.
_PROBES: Dict[str, str] = {}


def hub_is_offline() -> bool:
    """Whether ``huggingface_hub`` downloads are off (``HF_HUB_OFFLINE``)."""
    return bool(constants.HF_HUB_OFFLINE)


def _offline_setting_from_user() -> bool:
    """Whether the user set ``HF_HUB_OFFLINE`` (either way)."""
    return any(os.environ.get(name, '') != ''
               for name in ('HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE'))


def _probe(endpoint: str, timeout: float) -> str:
    """One request to the hub, no retries: '' if it answered in time, else
    why not.

    It goes through ``huggingface_hub``'s own HTTP client, so it takes the
    same proxies (``HTTPS_PROXY``) and client settings as a download would.
    It runs in a daemon thread so that ``timeout`` also bounds a DNS lookup
    that hangs (socket timeouts do not cover name resolution).
    """
    outcome = []

    def request():
        try:
            get_session().head(endpoint, timeout=timeout)
            outcome.append('')
        except Exception as exc:  # DNS, refused, timeout, proxy, TLS
            outcome.append(f'{type(exc).__name__}: {exc}')

    thread = threading.Thread(target=request, daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else f'no answer within {timeout:g} s'


def use_hub_offline_if_unreachable(timeout: float = 3.0) -> bool:
    """Call before a download from the hub: switch ``huggingface_hub`` to
    offline mode if the hub (``HF_ENDPOINT``) cannot be reached.

    The endpoint is probed once per process (at most ``timeout`` seconds);
    an explicit ``HF_HUB_OFFLINE`` (``1`` or ``0``) is obeyed and nothing is
    probed. When it switches, one warning says so.

    Args:
        timeout (float): Seconds the probe waits for the hub. Defaults to 3.

    Returns:
        bool: Whether hub downloads are off: weights come from the local
        cache (``HF_HUB_CACHE``) only.
    """
    if hub_is_offline() or _offline_setting_from_user():
        return hub_is_offline()
    endpoint = constants.ENDPOINT
    if endpoint not in _PROBES:
        _PROBES[endpoint] = _probe(endpoint, timeout)
    if not _PROBES[endpoint]:
        return False
    constants.HF_HUB_OFFLINE = True
    print_log(
        f'The Hugging Face hub ({endpoint}) is unreachable '
        f'({_PROBES[endpoint]}): offline mode from now on, as with '
        f'HF_HUB_OFFLINE=1; pretrained weights come from the local cache '
        f'({constants.HF_HUB_CACHE}) only. Set HF_HUB_OFFLINE=1 to skip '
        'this check, HF_HUB_OFFLINE=0 to keep trying the hub.',
        logger='current', level=30)
    return True


def _missing_from_cache(error: BaseException) -> bool:
    """Whether ``huggingface_hub`` found no cached file (anywhere in the
    chain of exceptions: open_clip re-raises it as other types)."""
    while error is not None:
        if isinstance(error, LocalEntryNotFoundError):
            return True
        error = error.__cause__ or error.__context__
    return False


def unavailable_weights_message(weights: str,
                                repo_id: Optional[str],
                                filename: str,
                                fix: str,
                                error: Exception,
                                cache_dir: Optional[str] = None) -> str:
    """The error for weights that could not be loaded; for weights missing
    from the cache of an offline machine, the ways to get them there.

    Args:
        weights (str): What was asked for, e.g. ``"CLIP ViT-B-16 'openai'"``.
        repo_id (str, optional): The hub repository of the weights.
        filename (str): The weight file (in that repository).
        fix (str): How to pass a local copy of the file; ``{file}`` is
            replaced by ``filename``. E.g. ``'set
            model.target_generator.pretrained=/path/to/{file}'``.
        error (Exception): What the library raised.
        cache_dir (str, optional): The hub cache the library was given.
            Defaults to ``HF_HUB_CACHE``.
    """
    fix = fix.format(file=filename)
    if repo_id is None or not (hub_is_offline()
                               and _missing_from_cache(error)):
        return (f'Could not load the {weights} weights '
                f'({type(error).__name__}: {error}). To use a weight file, '
                f'{fix}.')
    cache_dir = cache_dir or constants.HF_HUB_CACHE
    return (f'The {weights} weights are not in the local cache '
            f'({osp.join(cache_dir, "models--" + repo_id.replace("/", "--"))})'
            ' and the Hugging Face hub is offline (HF_HUB_OFFLINE=1, or '
            'unreachable). Either download '
            f'{constants.ENDPOINT}/{repo_id}/resolve/main/{filename} on a '
            f'machine with network and {fix}; or build this model once on '
            'such a machine and copy its Hugging Face cache '
            f'(~/.cache/huggingface/hub by default) to {cache_dir}.')
