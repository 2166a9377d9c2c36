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
                          local_path, member_key)

#: A tar header: the member's data starts this many bytes after it.
TAR_HEADER = 512
#: The fix for a shard member that cannot be read.
MEMBER_FIX = ('Fix the source image (or copy the shard again from where it '
              'came from) and re-run tools/make_shards.py SRC OUT, which '
              'rewrites the shards that no longer match their sources')


def _open_shards(capacity: int, cache_dir: Optional[str]):
    """wids's LRU cache of open, indexed shards; local shards opened where
    they are."""
    from wids.wids import DefaultLocalname, IndexedTarSamples, LRUShards

    class OpenShards(LRUShards):
        """``LRUShards`` holds ``IndexedTarSamples`` (a tar's member index,
        built over an mmap of the file) for the last ``capacity`` shards.
        Remote shards (``http(s)://``, ``s3://``, ``gs://``, ``pipe:``)
        are downloaded by wids into ``cache_dir`` and kept there; local
        ones are opened in place (wids would copy them into its cache and
        write lock files beside them)."""

        def get_shard(self, url: str):
            if not is_local(url):
                if not isinstance(self.localname, DefaultLocalname):
                    self.localname = DefaultLocalname(cache_dir or (
                        os.environ.get('WIDS_CACHE', '/tmp/_wids_cache')))
                return super().get_shard(url)
            if url not in self.lru:
                self.lru[url] = IndexedTarSamples(path=local_path(url))
            return self.lru[url]

    return OpenShards(capacity, localname=None)


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
    through webdataset's indexed reader ``wids`` (the shard list's
    ``nsamples`` give the shard, wids's ``IndexedTarSamples`` the member,
    over an mmap; ``LRUShards`` keeps the last ``open_shards`` shards open
    in each data worker). So ``SeededSampler``, DDP splitting and exact
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
        open_shards (int): Shards kept open (mmapped) per process.
            Defaults to 10.
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
                 open_shards: int = 10,
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
                            _open_shards(self.open_shards, self.cache_dir),
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
            shard = shards.get_shard(url)
        except Exception as exc:  # missing, not a tar, cut inside a header
            return failed(
                unnamed, 'is unreadable: the shard cannot be opened '
                f'({type(exc).__name__}: {exc}){self._size_note(record)}')
        if number not in checked:
            self._check_shard(shard, record)
            checked.add(number)
        reader = shard.reader  # wids's MMIndexedTar
        size = len(reader.mmapped_file)
        if inner >= len(shard):
            return failed(
                unnamed, f'is missing: the shard ends at byte {size} after '
                f'{len(shard)} samples; the index says {record["nsamples"]} '
                f'samples in {record.get("filesize")} bytes (truncated)')
        for name, offset, length in (reader.by_index[i]
                                     for i in shard.samples[inner]):
            if offset + TAR_HEADER + length > size:
                return failed(
                    name, f'is truncated: {length} bytes, of which the '
                    f'shard holds {size - offset - TAR_HEADER} (it ends at '
                    f'byte {size}; the index says {record.get("filesize")})')
        sample = shard[inner]
        if key is not None and sample['__key__'] != key:
            raise ValueError(
                f'Shard {url} does not match the index {self.ann_file}: its '
                f'sample {inner} has key {sample["__key__"]!r} where dataset '
                f'index {index} needs {key!r}. {MAKE_SHARDS_FIX} '
                "(on_error='skip' does not apply: every sample would get "
                'the seed of another.)')
        members = [sample['__key__'] + k for k in sample if k[:1] == '.']
        image = next((k for k in ('.' + e for e in IMAGE_EXTENSIONS)
                      if k in sample), None)
        if image is None:
            return failed(
                unnamed, f'is missing: no image member ('
                f'{", ".join(IMAGE_EXTENSIONS)}) among '
                f'{", ".join(members) or "no members"}')
        member = sample['__key__'] + image
        label = sample.get('.' + LABEL_EXTENSION)
        if label is not None:
            text = label.getvalue()
            try:
                info['gt_label'] = int(text.decode('ascii').strip())
            except (UnicodeDecodeError, ValueError):
                return failed(
                    member, f'has an unreadable label: '
                    f'{sample["__key__"]}.{LABEL_EXTENSION} holds '
                    f'{text[:20]!r}, not a class index')
        info['img_bytes'] = sample[image].getvalue()
        info['img_source'] = _source(member, url, index)
        return info

    def _check_shard(self, shard, record: dict) -> None:
        """Once per shard and process: the tar is cut short (a warning: its
        samples past the cut are unreadable), or it matches its index
        record (else ``ValueError``)."""
        reader = shard.reader  # wids's MMIndexedTar
        size = len(reader.mmapped_file)
        expected = record.get('filesize')
        # A whole tar ends with two zero blocks, after its last member.
        whole = size >= 2 * TAR_HEADER and not any(
            offset + TAR_HEADER + length > size - 2 * TAR_HEADER
            for _, offset, length in reader.by_index[-1:]) and \
            reader.mmapped_file[size - 2 * TAR_HEADER:size] == \
            bytes(2 * TAR_HEADER)
        if not whole:
            print_log(
                f'Shard {record["url"]} is truncated ({size} bytes, the '
                f'index says {expected}): its samples past the cut are '
                'unreadable.', logger='current', level=logging.WARNING)
        elif len(shard) != record['nsamples'] or (expected is not None
                                                  and size != expected):
            raise ValueError(
                f'Shard {record["url"]} does not match the index '
                f'{self.ann_file}: it holds {len(shard)} samples in {size} '
                f'bytes, the index says {record["nsamples"]} in {expected}. '
                f"{MAKE_SHARDS_FIX} (on_error='skip' does not apply: every "
                'later sample would get the seed of another.)')

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
