"""One tar shard opened for random access: wids's mmap reader, given the
member table instead of scanning the tar for it."""
from typing import Dict, List, Optional, Tuple

import numpy as np
from wids.wids import group_by_key, splitname
from wids.wids_mmtar import MMIndexedTar

#: A tar header: a member's data starts this many bytes after it.
TAR_HEADER = 512


class ShardIndexMismatch(ValueError):
    """The member table does not describe the tar (a stale index)."""


class IndexedShard(MMIndexedTar):
    """wids's ``MMIndexedTar`` (an mmap of the tar, members read at their
    offsets) whose member table is given or built once by wids's scan.

    Part of the data pipeline of `MVP: Multimodality-guided Visual
    Pre-training <https://arxiv.org/abs/2203.05175>`_. wids indexes a tar
    when it opens it, parsing every member header (about 1 s for a 1 GB
    shard of ImageNet: 18k headers, and 5 MB of Python objects). Training
    draws samples in a global random order (``SeededSampler``), so every
    data worker touches every shard all the time; re-scanning on each
    re-open, or keeping every scanned shard, would cost seconds per sample
    or gigabytes per worker. ``tools/make_shards.py`` therefore writes each
    shard's member table (``shard-000000.members.npy``: header offset and
    size of every member, int64 ``[members, 2]``, 144 KB per 1 GB shard),
    and this reader is opened from it in well under a millisecond. Without
    the table (shards from elsewhere) wids's own scan builds it.

    Args:
        path (str): The tar file.
        members (np.ndarray, optional): ``[members, 2]`` (header offset,
            size), in tar order. Defaults to None: wids's scan.
        per_sample (int): Members of each sample, with ``members``
            (a sample is that many consecutive members). Defaults to 1.
    """

    def __init__(self, path: str, members: Optional[np.ndarray] = None,
                 per_sample: int = 1) -> None:
        self._given = members
        self._per_sample = per_sample
        super().__init__(path)

    def _build_index(self) -> None:
        if self._given is None:  # wids's scan, kept in compact form
            super()._build_index()
            names = [name for name, _, _ in self.by_index]
            groups = group_by_key(names)
            self.members = np.array([[o, s] for _, o, s in self.by_index],
                                    np.int64).reshape(-1, 2)
            self.starts = np.array([g[0] for g in groups] + [len(names)],
                                   np.int64)
            self.by_index, self.by_name = [], {}
            return
        self.by_index, self.by_name = [], {}
        members = np.asarray(self._given, np.int64)
        per = self._per_sample
        if members.ndim != 2 or members.shape[1] != 2 or \
                len(members) % per:
            raise ShardIndexMismatch(
                f'its member table has shape {members.shape}, not '
                f'[{per} x samples, 2] ({per} members a sample)')
        self.members = members
        self.starts = np.arange(0, len(members) + 1, per, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.starts) - 1

    @property
    def size(self) -> int:
        return len(self.mmapped_file)

    def ends_whole(self) -> bool:
        """Whether the file holds its last member and the two zero blocks
        that end a tar (a truncated copy does not)."""
        if not len(self.members):
            return False
        offset, length = (int(v) for v in self.members[-1])
        end = offset + TAR_HEADER + length
        return self.size >= end + 2 * TAR_HEADER and \
            self.mmapped_file[self.size - 2 * TAR_HEADER:self.size] == \
            bytes(2 * TAR_HEADER)

    def sample(self, inner: int
               ) -> Tuple[str, Dict[str, bytes], List[Tuple[str, str]]]:
        """Sample ``inner``: ``(key, {'.ext': bytes}, problems)``.

        ``problems`` are ``(member name or '', problem)`` for the members
        the file cuts short (truncated); a header that is not where the
        table says raises :class:`ShardIndexMismatch`.
        """
        key, found, problems = None, {}, []
        for offset, length in self.members[self.starts[inner]:
                                           self.starts[inner + 1]]:
            offset, length = int(offset), int(length)
            if offset + TAR_HEADER > self.size:
                problems.append(('', f'the member at byte {offset} is '
                                 'missing'))
                continue
            try:
                name, data = self.get_at_offset(offset)
                member_key, extension = splitname(name)
            except Exception as exc:  # not a header: a stale table
                raise ShardIndexMismatch(
                    f'no member header at byte {offset} '
                    f'({type(exc).__name__}: {exc})') from exc
            if len(data) != length:
                if offset + TAR_HEADER + length > self.size:
                    problems.append((name, (
                        f'{length} bytes, of which the file holds '
                        f'{len(data)}')))
                    continue
                raise ShardIndexMismatch(
                    f'member {name} at byte {offset} has {len(data)} bytes, '
                    f'the table says {length}')
            if key is not None and member_key != key:
                raise ShardIndexMismatch(
                    f'member {name} at byte {offset} is not part of sample '
                    f'{key}')
            key = member_key
            found[extension] = data
        return key, found, problems
