"""A dataset that reads WebDataset tar shards by index, through wids."""
import logging
import os
from typing import Optional, Sequence

import numpy as np
from mmengine.logging import print_log

from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from .shard_index import (IMAGE_EXTENSIONS, INDEX_NAME, LABEL_EXTENSION,
                          MAKE_SHARDS_FIX, is_local, load_shard_index,
                          local_path, member_key, members_url)
from .shard_reader import IndexedShard, ShardIndexMismatch
#: The fix for a shard member that cannot be read.
MEMBER_FIX = ('Fix the source image (or copy the shard again from where it '
              'came from) and re-run tools/make_shards.py SRC OUT, which '
              'rewrites the shards that no longer match their sources')


class _OpenShards:
    """The shards a process has open: wids's ``LRUCache`` of
    :class:`IndexedShard` (closed when evicted). Local shards are opened
    where they are; remote ones (``http(s)://``, ``s3://``, ``gs://``,
    ``pipe:``) are downloaded by wids (``download_and_open``: ``curl``,
    ``aws s3 cp``, ``gsutil``, under a file lock) into ``cache_dir`` on
    first use, with their member tables, and kept there."""

    def __init__(self, capacity: int, cache_dir: Optional[str]) -> None:
        from wids.wids_lru import LRUCache
        self.cache_dir = cache_dir or os.environ.get('WIDS_CACHE',
                                                     '/tmp/_wids_cache')
        self.lru = LRUCache(capacity,
                            release_handler=lambda url, shard: shard.close())
        self.scanned = set()  # shards without a member table (warned)

    def _local(self, url: str) -> str:
        if is_local(url):
            return local_path(url)
        from wids.wids import DefaultLocalname
        from wids.wids_dl import download_and_open
        local = DefaultLocalname(self.cache_dir)(url)
        with download_and_open(url, local):
            return local

    def get(self, url: str, per_sample: int) -> IndexedShard:
        shard = self.lru[url]
        if shard is None:
            path = self._local(url)
            try:
                table = self._local(members_url(url))
                members = np.load(table)
            except Exception:  # no table: wids scans the tar
                members = None
                if url not in self.scanned:
                    self.scanned.add(url)
                    print_log(
                        f'Shard {url} has no member table '
                        f'({members_url(url)}): wids scans the tar each time '
                        'a worker opens it (about 1 s per GB). '
                        'tools/make_shards.py writes the tables.',
                        logger='current', level=logging.WARNING)
            shard = IndexedShard(path, members, per_sample)
            self.lru[url] = shard
        return shard


def _source(member: str, url: str, index: int) -> str:
    """How messages name a sample."""
    return f'member {member} of shard {url} (dataset index {index})'


@DATASETS.register_module()
class ShardDataset(BaseDataset):
    """Images (and labels) in WebDataset tar shards, read by index.

    Part of the data pipeline of `MVP: Multimodality-guided Visual
    Pre-training <https://arxiv.org/abs/2203.05175>`_. ImageNet's 1.28M
    files (or a 14M-image collection) opened one by one starve the GPUs on
    a cluster's network file system; in ~1 GB tar shards
    (``tools/make_shards.py``, layout: :mod:`~mvp_mm.datasets.shard_index`)
    they are read as a few large files. Unlike WebDataset's streaming
    reader this is a map-style dataset: sample ``i`` is read at random
    through webdataset's indexed reader ``wids``: the shard list's
    ``nsamples`` give the shard, wids's mmap tar reader the member
    (:class:`~mvp_mm.datasets.shard_reader.IndexedShard`, opened from the
    member table ``tools/make_shards.py`` writes beside each shard, so that
    random access over all shards stays cheap), and wids's ``LRUCache``
    keeps the last ``open_shards`` shards open in each data worker. So
    ``SeededSampler``, DDP splitting and exact
    (mid-epoch) resume work as with folders, and for shards converted from
    a folder, sample ``i`` is the folder dataset's sample ``i``: the same
    seed, crop and mask.

    Each sample is handed to the pipeline as ``img_bytes`` (the member's
    bytes, as in the source file), ``img_source`` (the member and shard,
    for messages) and ``gt_label`` (from ``<key>.cls``, when present):
    :class:`RandomResizedCropFromFile` and :class:`CheckedLoadImageFromFile`
    decode the bytes as they decode a file (the reduced-DCT JPEG path
    included). A member that cannot be read (a truncated shard, a missing
    member, a label that is not a number) arrives as ``img_bytes=None`` and
    ``img_error``, and those transforms raise an error naming the shard and
    the member, or skip, log and count it (``on_error='skip'``). A shard
    that does not match the index (other sample counts or sizes, keys that
    are not the dataset indices) is always an error: skipping would
    silently give samples the seeds of others.

    Remote shards (``data_root='https://...'`` or ``'s3://...'``) are
    downloaded whole by wids (``curl``, ``aws s3 cp``, ``gsutil``) into
    ``cache_dir`` on first use and read there afterwards.

    Args:
        data_root (str): The folder (or URL) of the shards. Defaults to ''.
        ann_file (str): The shard index, relative to ``data_root``.
            Defaults to ``'shardindex.json'``.
        cache_dir (str, optional): Where remote shards are downloaded.
            Defaults to None: ``$WIDS_CACHE``, else ``/tmp/_wids_cache``.
        open_shards (int): Shards kept open (mmapped) per process; opening
            one again costs well under a millisecond with its member table.
            Defaults to 64.
        metainfo (dict, optional): As mmpretrain's datasets; ``classes``
            defaults to the index's (class folder names), if any.
        pipeline (Sequence): The transforms. Defaults to ().
        test_mode (bool): As mmpretrain's datasets. Defaults to False.
        lazy_init (bool): Read the index at the first access. Defaults to
            False.
        max_refetch (int): Replacements drawn for a skipped sample before
            giving up, as mmengine's ``BaseDataset``. Defaults to 1000.
    """

    def __init__(self,
                 data_root: str = '',
                 ann_file: str = INDEX_NAME,
                 cache_dir: Optional[str] = None,
                 open_shards: int = 64,
                 metainfo: Optional[dict] = None,
                 pipeline: Sequence = (),
                 test_mode: bool = False,
                 lazy_init: bool = False,
                 max_refetch: int = 1000) -> None:
        self.cache_dir = cache_dir
        self.open_shards = open_shards
        self._reader = None  # per process, see _shards()
        super().__init__(
            ann_file=ann_file,
            metainfo=metainfo,
            data_root=data_root,
            serialize_data=False,
            pipeline=pipeline,
            test_mode=test_mode,
            lazy_init=lazy_init,
            max_refetch=max_refetch)

    def full_init(self) -> None:
        """Read the shard index (no per-sample list is built)."""
        if self._fully_initialized:
            return
        index = load_shard_index(self.ann_file)
        self.shardlist = index['shardlist']
        self._ends = np.cumsum([int(s['nsamples']) for s in self.shardlist])
        ours = index.get('mvp_mm') or {}
        self._keys_are_indices = ours.get('keys') == 'index'
        # Members a sample has in the member tables: the image (+ label).
        self._per_sample = 2 if ours.get('labelled') else 1
        if ours.get('classes') and 'classes' not in self._metainfo:
            self._metainfo['classes'] = tuple(ours['classes'])
        self._fully_initialized = True

    def __len__(self) -> int:
        self.full_init()
        return int(self._ends[-1])

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state['_reader'] = None  # open mmaps stay in their process
        return state

    def _shards(self):
        """``(open shards, numbers of the shards checked)`` of this
        process."""
        if self._reader is None or self._reader[0] != os.getpid():
            self._reader = (os.getpid(),
                            _OpenShards(self.open_shards, self.cache_dir),
                            set())
        return self._reader[1], self._reader[2]

    def get_data_info(self, idx: int) -> dict:
        """Sample ``idx``: ``img_bytes``, ``img_source``, ``img_fix``,
        ``gt_label`` (labelled shards), ``sample_idx`` (``idx`` itself, so
        a :class:`SeededIndex` keeps its seed); ``img_bytes=None`` and
        ``img_error`` for a member that cannot be read."""
        self.full_init()
        index = int(idx)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f'ShardDataset index {int(idx)} out of range '
                             f'(0..{len(self) - 1}).')
        info = self._read(index)
        info['sample_idx'] = idx if int(idx) >= 0 else index
        return info

    def _read(self, index: int) -> dict:
        number = int(np.searchsorted(self._ends, index, side='right'))
        inner = index - (int(self._ends[number - 1]) if number else 0)
        record = self.shardlist[number]
        url = record['url']
        key = member_key(index) if self._keys_are_indices else None
        info = dict(img_bytes=None, img_fix=MEMBER_FIX)

        def failed(member: str, problem: str) -> dict:
            info['img_source'] = _source(member, url, index)
            info['img_error'] = problem
            return info

        unnamed = f'{key}.*' if key else f'#{inner}'
        shards, checked = self._shards()
        try:
            shard = shards.get(url, self._per_sample)
        except ShardIndexMismatch as exc:
            raise self._mismatch(url, str(exc)) from exc
        except Exception as exc:  # missing, not a tar, cut inside a header
            return failed(
                unnamed, 'is unreadable: the shard cannot be opened '
                f'({type(exc).__name__}: {exc}){self._size_note(record)}')
        if number not in checked:
            self._check_shard(shard, record)
            checked.add(number)
        if inner >= len(shard):
            return failed(
                unnamed, f'is missing: the shard ends at byte {shard.size} '
                f'after {len(shard)} samples; the index says '
                f'{record["nsamples"]} samples in {record.get("filesize")} '
                'bytes (truncated)')
        try:
            found_key, members, problems = shard.sample(inner)
        except ShardIndexMismatch as exc:
            raise self._mismatch(url, f'sample {inner}: {exc}') from exc
        if key is not None and found_key not in (None, key):
            raise self._mismatch(
                url, f'its sample {inner} has key {found_key!r} where '
                f'dataset index {index} needs {key!r}')
        found_key = found_key or key
        if problems:
            named = [name for name, _ in problems if name]
            return failed(
                named[0] if named else unnamed, 'is truncated: ' + '; '.join(
                    f'{name or "a member"}: {problem}'
                    for name, problem in problems) +
                f' (the shard ends at byte {shard.size}; the index says '
                f'{record.get("filesize")})')
        image = next((k for k in ('.' + e for e in IMAGE_EXTENSIONS)
                      if k in members), None)
        if image is None:
            return failed(
                unnamed, f'is missing: no image member ('
                f'{", ".join(IMAGE_EXTENSIONS)}) among '
                f'{", ".join(found_key + k for k in members) or "none"}')
        member = found_key + image
        label = members.get('.' + LABEL_EXTENSION)
        if label is not None:
            try:
                info['gt_label'] = int(label.decode('ascii').strip())
            except (UnicodeDecodeError, ValueError):
                return failed(
                    member, f'has an unreadable label: {found_key}.'
                    f'{LABEL_EXTENSION} holds {label[:20]!r}, not a class '
                    'index')
        info['img_bytes'] = members[image]
        info['img_source'] = _source(member, url, index)
        return info

    def _mismatch(self, url: str, problem: str) -> ValueError:
        return ValueError(
            f'Shard {url} does not match the index {self.ann_file}: '
            f'{problem}. {MAKE_SHARDS_FIX} (on_error=\'skip\' does not '
            'apply: every later sample would get the seed of another.)')

    def _check_shard(self, shard: IndexedShard, record: dict) -> None:
        """Once per shard and process: the tar is cut short (a warning: its
        samples past the cut are unreadable), or it matches its index
        record (else ``ValueError``)."""
        expected = record.get('filesize')
        if not shard.ends_whole():
            print_log(
                f'Shard {record["url"]} is truncated ({shard.size} bytes, '
                f'the index says {expected}): its samples past the cut are '
                'unreadable.', logger='current', level=logging.WARNING)
        elif len(shard) != record['nsamples'] or (expected is not None
                                                  and shard.size != expected):
            raise self._mismatch(
                record['url'], f'it holds {len(shard)} samples in '
                f'{shard.size} bytes, the index says {record["nsamples"]} in '
                f'{expected}')

    @staticmethod
    def _size_note(record: dict) -> str:
        url, expected = record['url'], record.get('filesize')
        if not is_local(url) or expected is None:
            return ''
        path = local_path(url)
        if not os.path.isfile(path):
            return f'; {path} does not exist'
        return f'; {os.path.getsize(path)} bytes, the index says {expected}'

    def extra_repr(self):
        return [f'Shard index: \t{self.ann_file}',
                f'Shards: \t{len(self.shardlist)}']
