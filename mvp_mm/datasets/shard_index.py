"""The shard index: wids's JSON shard list, as ``tools/make_shards.py``
writes it and :class:`~mvp_mm.datasets.ShardDataset` reads it.

A folder of shards in the WebDataset layout (https://github.com/webdataset/
webdataset#the-webdataset-format) holds ``shard-000000.tar``, ... and
``shardindex.json``, the shard list of webdataset's indexed reader ``wids``
(its ``widsindex create`` format, ``wids-shard-index-v1``)::

    {"__kind__": "wids-shard-index-v1", "wids_version": 1, "name": ...,
     "shardlist": [{"url": "shard-000000.tar", "nsamples": 9123,
                    "filesize": 1000007680, "md5sum": "...",
                    "members_md5": "...", "fingerprint": "..."}, ...],
     "mvp_mm": {"format": 1, "keys": "index", "samples": 1281167,
                "labelled": true, "classes": ["n01440764", ...],
                "layout": "class folders"}}

``nsamples`` per shard is what maps a dataset index to a shard and a sample
in it; relative ``url`` s are resolved against the index's own folder (or
URL), so the folder can move. Sample ``i`` is the tar members
``<key>.<ext>`` (the image's bytes, as in the source file) and, when the
source has labels, ``<key>.cls`` (the class index as decimal text), with
``key = '%09d' % i``: the key is the dataset index, which lets the reader
check that the index and the tars agree. ``fingerprint``, ``members_md5``
and the ``mvp_mm`` block are ours; wids ignores them. Beside each shard,
``shard-000000.members.npy`` is its member table (header offset and size
of every member), so that a reader opens it without scanning the tar
(:class:`~mvp_mm.datasets.shard_reader.IndexedShard`).

Paper: `MVP: Multimodality-guided Visual Pre-training
<https://arxiv.org/abs/2203.05175>`_.
"""
import json
import os
import os.path as osp
from typing import List, Optional
from urllib.parse import urlparse

INDEX_NAME = 'shardindex.json'
#: The digits of a sample's key (its dataset index): up to 10**9 samples.
KEY_DIGITS = 9
#: Tar member extensions of images, as the source files' (lower case;
#: ``.jpeg`` is written ``.jpg``, WebDataset's usual name).
IMAGE_EXTENSIONS = ('jpg', 'png', 'webp', 'bmp', 'ppm', 'pgm', 'tif',
                    'tiff', 'jpeg')
LABEL_EXTENSION = 'cls'
#: A shard's member table: int64 ``[members, 2]``, the header offset and
#: the size of each member, in tar order (see ``IndexedShard``).
MEMBERS_SUFFIX = '.members.npy'
FORMAT = 1
MAKE_SHARDS_FIX = (
    'Re-run tools/make_shards.py SRC OUT: it verifies the finished shards, '
    'keeps those that match their source and rewrites the others and the '
    'index.')


def member_key(index: int) -> str:
    """The tar key of dataset sample ``index``."""
    return f'{index:0{KEY_DIGITS}d}'


def member_extension(path: str) -> str:
    """The tar member extension for an image file (``a/b.JPEG`` -> ``jpg``).
    """
    extension = osp.splitext(path)[1].lower().lstrip('.')
    return 'jpg' if extension == 'jpeg' else extension


def shard_name(number: int) -> str:
    return f'shard-{number:06d}.tar'


def members_url(shard_url: str) -> str:
    """The member table beside a shard: ``shard-000000.members.npy``."""
    stem = shard_url[:-4] if shard_url.endswith('.tar') else shard_url
    return stem + MEMBERS_SUFFIX


def is_local(url: str) -> bool:
    """A path or ``file://`` URL (not ``http://``, ``s3://``, ``pipe:``)."""
    return urlparse(url).scheme in ('', 'file') and \
        not url.startswith('pipe:')


def local_path(url: str) -> str:
    return urlparse(url).path if url.startswith('file:') else url


def index_layout() -> str:
    return ('Shard layout (type=\'ShardDataset\'): <data_root>/'
            f'{INDEX_NAME} (wids\'s shard list: url and nsamples per shard) '
            'beside shard-000000.tar (and shard-000000.members.npy, its '
            'member table), ...; sample i is the members '
            f'<key>.jpg (or another image extension) and, with labels, '
            f'<key>.cls, key = %0{KEY_DIGITS}d of i. tools/make_shards.py SRC '
            'OUT writes it from class folders, a flat folder of images or an '
            'annotation list.')


def load_shard_index(path: str) -> dict:
    """Read and resolve a shard index (local or remote) with wids.

    Args:
        path (str): The index file (a path, ``file://``, ``http(s)://``,
            ``s3://``...; remote files are downloaded by wids).

    Returns:
        dict: The index, ``shardlist`` URLs resolved against the index's
        folder.

    Raises:
        FileNotFoundError: A local index that does not exist.
        ValueError: Not a wids shard list, or one that lists no shards.
    """
    from wids.wids_specs import load_dsdesc_and_resolve, urldir
    if is_local(path):
        if not osp.isfile(local_path(path)):
            raise FileNotFoundError(
                f'Shard index {path!r} does not exist. Write it (and the '
                'shards) with tools/make_shards.py SRC OUT, and point the '
                f"dataset's data_root at OUT. {index_layout()}")
        try:
            with open(local_path(path), encoding='utf-8') as f:
                raw = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f'Shard index {path!r} is not JSON ({exc}). '
                             f'{MAKE_SHARDS_FIX}') from exc
        if isinstance(raw, dict) and not raw.get('shardlist') and \
                not raw.get('datasets'):
            raise ValueError(
                f'Shard index {path!r} lists no shards (an empty '
                '"shardlist"): there is nothing to read. '
                f'{MAKE_SHARDS_FIX}')
    try:
        return load_dsdesc_and_resolve(path, base=urldir(path))
    except (AssertionError, KeyError, TypeError) as exc:
        raise ValueError(
            f'Shard index {path!r} is not a wids shard list '
            '("wids_version": 1 and a non-empty "shardlist" of {"url", '
            f'"nsamples"}} entries): {type(exc).__name__}: {exc}. '
            f'{MAKE_SHARDS_FIX}') from exc


def write_json_atomically(path: str, data: dict) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, so
    that a reader never sees a partial file."""
    partial = path + '.partial'
    with open(partial, 'w', encoding='utf-8') as f:
        json.dump(data, f, indent=1)
        f.write('\n')
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, path)


def index_document(name: str, shardlist: List[dict], samples: int,
                   labelled: bool, classes: Optional[List[str]],
                   layout: str) -> dict:
    """The index as :func:`load_shard_index` reads it."""
    return {
        '__kind__': 'wids-shard-index-v1',
        'wids_version': 1,
        'name': name,
        'shardlist': shardlist,
        'mvp_mm': dict(format=FORMAT, keys='index', samples=samples,
                       labelled=labelled, classes=classes, layout=layout),
    }
