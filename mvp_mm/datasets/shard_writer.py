"""Convert an image folder or annotation list into WebDataset tar shards.

``tools/make_shards.py`` is the command line; this module does the work, so
that the benchmark and the tests convert the same way. The samples are
listed by mmpretrain's own ``CustomDataset`` (class folders, a flat folder
with ``with_label=False``, or an annotation list), so sample ``i`` of the
shards is sample ``i`` of the folder dataset: ``SeededSampler`` gives it the
same seed, and it gets the same crop and mask. Each file's bytes are copied
into the tar as they are (never re-encoded), with fixed member metadata
(mtime 0, uid/gid 0, mode 0644, no user names), so the same input always
gives the same shards. The layout and the index: :mod:`.shard_index`.

Every shard is written to ``<name>.partial`` with its member table
(``shard-000000.members.npy``: each member's header offset and size, so
that readers need not scan the tar), scanned by wids (whose member index
must equal the table), read back as training reads it and compared sample
by sample with what was read from the source (key, image digest, label)
before it is renamed into place; its md5s and the fingerprint of its
sources (paths, sizes, mtimes, labels, first index) go into
``make_shards.progress.json`` after each shard. An
interrupted conversion run again keeps the shards whose fingerprint and md5
still match and redoes the rest; the index is written last.

Paper: `MVP: Multimodality-guided Visual Pre-training
<https://arxiv.org/abs/2203.05175>`_.
"""
import hashlib
import io
import json
import os
import os.path as osp
import re
import tarfile
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.logging import print_log

from .shard_index import (FORMAT, INDEX_NAME, LABEL_EXTENSION,
                          index_document, load_shard_index, member_extension,
                          member_key, members_url, shard_name,
                          write_json_atomically)
from .shard_reader import IndexedShard, ShardIndexMismatch

PROGRESS_NAME = 'make_shards.progress.json'
DEFAULT_SHARD_MB = 1000
#: mmpretrain's CustomDataset / ImageNet extensions: the folder datasets'.
SOURCE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif')
_BLOCK = tarfile.BLOCKSIZE
_OURS = re.compile(r'^shard-\d{6}\.(tar|members\.npy)(\.partial)?$')


@dataclass
class SourceListing:
    """The images to convert, in the folder dataset's order.

    Attributes:
        root (str): The source folder.
        paths (list[str]): Image paths relative to ``root``.
        labels (list[int] | None): One class index per image, or None.
        classes (list[str] | None): Class names (class folders), or None.
        layout (str): ``'class folders'``, ``'flat folder'`` or
            ``'annotation list'``.
    """
    root: str
    paths: List[str]
    labels: Optional[List[int]]
    classes: Optional[List[str]]
    layout: str


def list_source_images(src: str,
                       ann_file: Optional[str] = None,
                       with_label: Optional[bool] = None) -> SourceListing:
    """List ``src`` as mmpretrain's ``CustomDataset`` reads it.

    Args:
        src (str): ImageNet-style class folders (``src/<class>/<image>``),
            a flat folder of images (``src/**/<image>``, no labels), or the
            folder the paths of ``ann_file`` are relative to.
        ann_file (str, optional): mmpretrain annotation list,
            ``'<path> <label>'`` lines (``'<path>'`` with
            ``with_label=False``). Defaults to None (scan ``src``).
        with_label (bool, optional): None: labels from class folders, or
            none for a folder that holds images directly (for an annotation
            list: labels). False: no labels, every image under ``src``.
            Defaults to None.

    Returns:
        SourceListing: The images, in the folder dataset's order.
    """
    from mmpretrain.datasets import CustomDataset
    if not osp.isdir(src):
        raise FileNotFoundError(f'Source folder {src!r} does not exist.')
    if ann_file:
        if not osp.isfile(ann_file):
            raise FileNotFoundError(
                f'Annotation list {ann_file!r} does not exist.')
        with_label = True if with_label is None else with_label
        layout = 'annotation list'
    else:
        entries = list(os.scandir(src))
        direct = [e.name for e in entries
                  if e.is_file() and e.name.lower().endswith(
                      SOURCE_EXTENSIONS)]
        folders = [e.name for e in entries if e.is_dir()]
        if with_label is None:
            if direct and folders:
                raise ValueError(
                    f'{src!r} holds images ({direct[0]}, ...) and '
                    f'sub-folders ({folders[0]}, ...): class folders or an '
                    'unlabelled collection? Pass --no-labels to read every '
                    'image under it as one unlabelled collection, or move '
                    'the images into class folders.')
            with_label = not direct
        elif with_label and direct:
            raise ValueError(
                f'{src!r} holds images directly ({direct[0]}, ...), outside '
                'any class folder: with labels they would be left out. Move '
                'them into class folders, or read the folder without labels.')
        layout = 'class folders' if with_label else 'flat folder'
    dataset = CustomDataset(
        data_prefix=osp.abspath(src),
        ann_file=osp.abspath(ann_file) if ann_file else '',
        with_label=with_label,
        extensions=SOURCE_EXTENSIONS,
        lazy_init=True)
    try:
        data_list = dataset.load_data_list()
    except RuntimeError as exc:  # 'Found 0 files in subfolders'
        raise FileNotFoundError(
            f'No images ({", ".join(SOURCE_EXTENSIONS)}) in {src!r} as '
            f'{layout}: {exc}') from exc
    if not data_list:
        raise FileNotFoundError(f'{ann_file!r} lists no images.')
    root = osp.abspath(src)
    paths = [osp.relpath(d['img_path'], root) for d in data_list]
    labels = [int(d['gt_label']) for d in data_list] if with_label \
        else None
    classes = list(dataset.CLASSES) if with_label and not ann_file else None
    return SourceListing(root, paths, labels, classes, layout)


class _HashingWriter:
    """A write-only file that also computes the md5 of what it writes."""

    def __init__(self, f) -> None:
        self.f = f
        self.md5 = hashlib.md5()
        self.size = 0

    def write(self, data) -> int:
        self.md5.update(data)
        self.size += len(data)
        return self.f.write(data)

    def tell(self) -> int:
        return self.size


def _member(name: str, size: int) -> tarfile.TarInfo:
    """A tar member header with fixed metadata (deterministic output)."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ''
    info.type = tarfile.REGTYPE
    return info


def _padded(size: int) -> int:
    return -(-size // _BLOCK) * _BLOCK


def _sample_bytes(size: int, labelled: bool) -> int:
    """Bytes a sample takes in the tar: header + padded data per member
    (a label is one block)."""
    return _BLOCK + _padded(size) + (2 * _BLOCK if labelled else 0)


def _tar_bytes(members: int) -> int:
    """The size of a tar file whose members take ``members`` bytes: two
    zero blocks end it, and Python's tarfile pads it to whole records."""
    return -(-(members + 2 * _BLOCK) // tarfile.RECORDSIZE) * \
        tarfile.RECORDSIZE


def plan_shards(sizes: Sequence[int], labelled: bool,
                shard_bytes: int) -> List[Tuple[int, int]]:
    """Split samples ``0..n`` into ``[(start, end), ...]``: a shard is
    closed before the sample that would take its file past
    ``shard_bytes``."""
    plan, start, total = [], 0, 0
    for index, size in enumerate(sizes):
        need = _sample_bytes(size, labelled)
        if index > start and _tar_bytes(total + need) > shard_bytes:
            plan.append((start, index))
            start, total = index, 0
        total += need
    plan.append((start, len(sizes)))
    return plan


def _fingerprint(listing: SourceListing, stats: List[os.stat_result],
                 start: int, end: int) -> str:
    """What a shard's content depends on: its first index, its sources
    (path, size, mtime) and their labels."""
    items = [[
        listing.paths[i], stats[i].st_size, stats[i].st_mtime_ns,
        listing.labels[i] if listing.labels is not None else None
    ] for i in range(start, end)]
    text = json.dumps([FORMAT, start, items], separators=(',', ':'))
    return hashlib.sha256(text.encode()).hexdigest()


def file_md5(path: str, chunk: int = 1 << 22) -> str:
    md5 = hashlib.md5()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            md5.update(block)
    return md5.hexdigest()


def _read_source(listing: SourceListing, index: int, size: int) -> bytes:
    path = osp.join(listing.root, listing.paths[index])
    with open(path, 'rb') as f:
        data = f.read()
    if len(data) != size:
        raise RuntimeError(
            f'{path} changed during the conversion ({size} bytes when '
            f'listed, {len(data)} now). Run the conversion again once the '
            'source is stable.')
    return data


def check_shard(path: str,
                start: int,
                count: int,
                expected: Optional[Callable[[int], Tuple[bytes,
                                                         Optional[int]]]]
                = None,
                table: Optional[str] = None) -> List[str]:
    """Read a shard back and compare it with its source.

    wids scans the tar (its own member index, independent of ours), which
    must equal the member table beside it; then every sample is read as
    training reads it (:class:`IndexedShard` from the table).

    Args:
        path (str): The tar file.
        start (int): Its first dataset index.
        count (int): The samples it should hold.
        expected (Callable, optional): ``index -> (md5 digest of the
            image's bytes, label or None)``; None checks the keys only.
        table (str, optional): Its member table. Defaults to the one beside
            it (:func:`members_url`).

    Returns:
        list[str]: The problems found (empty: the shard is right).
    """
    from wids.wids_mmtar import MMIndexedTar
    try:
        scan = MMIndexedTar(path)
        scanned = np.array([[o, s] for _, o, s in scan.by_index],
                           np.int64).reshape(-1, 2)
        scan.close()
    except Exception as exc:  # not a tar, truncated header
        return [f'{path}: wids cannot index it ({type(exc).__name__}: '
                f'{exc})']
    table = table or members_url(path)
    try:
        members = np.load(table)
    except (OSError, ValueError) as exc:
        return [f'{table}: unreadable ({type(exc).__name__}: {exc})']
    if not np.array_equal(members, scanned):
        return [f'{table} does not match the tar as wids scans it']
    if count == 0 or len(members) % count:
        return [f'{table}: {len(members)} members for {count} samples']
    shard = IndexedShard(path, members, len(members) // count)
    problems = []
    try:
        for inner in range(count):
            key = member_key(start + inner)
            try:
                got_key, found, cut = shard.sample(inner)
            except ShardIndexMismatch as exc:
                problems.append(f'{path}: sample {inner}: {exc}')
                break
            if cut:
                problems.append(f'{path}: sample {inner} is truncated')
            elif got_key != key:
                problems.append(f'{path}: sample {inner} has key '
                                f'{got_key!r}, {key!r} expected')
            elif expected is not None:
                problems += _compare(path, key, found, *expected(start +
                                                                inner))
            if len(problems) >= 10:
                break
    finally:
        shard.close()
    return problems


def _compare(path: str, key: str, found: Dict[str, bytes], digest: bytes,
             label: Optional[int]) -> List[str]:
    """A sample's members against its source's image digest and label."""
    problems = []
    images = [v for k, v in found.items() if k[1:] != LABEL_EXTENSION]
    if len(images) != 1 or hashlib.md5(images[0]).digest() != digest:
        problems.append(f'{path}: member {key} differs from its source '
                        'image')
    got = found.get('.' + LABEL_EXTENSION)
    got = None if got is None else int(got)
    if got != label:
        problems.append(f'{path}: {key}.cls is {got}, {label} expected')
    return problems


def _write_shard(listing: SourceListing, stats: List[os.stat_result],
                 start: int, end: int, path: str,
                 progress: Callable[[int], None]) -> dict:
    """Write samples ``start..end`` to ``path`` and its member table
    (through ``.partial`` files), checked; its index record."""
    partial = path + '.partial'
    table = members_url(path)
    digests, members = {}, []
    with open(partial, 'wb') as raw:
        out = _HashingWriter(raw)
        with tarfile.open(fileobj=out, mode='w',
                          format=tarfile.USTAR_FORMAT) as tar:

            def add(name: str, data: bytes) -> None:
                members.append((tar.offset, len(data)))  # its header
                tar.addfile(_member(name, len(data)), io.BytesIO(data))

            for index in range(start, end):
                data = _read_source(listing, index, stats[index].st_size)
                key = member_key(index)
                extension = member_extension(listing.paths[index])
                add(f'{key}.{extension}', data)
                if listing.labels is not None:
                    add(f'{key}.{LABEL_EXTENSION}',
                        str(listing.labels[index]).encode())
                digests[index] = hashlib.md5(data).digest()
                progress(len(data))
        raw.flush()
        os.fsync(raw.fileno())
    with open(table + '.partial', 'wb') as f:
        np.save(f, np.array(members, np.int64).reshape(-1, 2))
        f.flush()
        os.fsync(f.fileno())
    os.replace(table + '.partial', table)
    labels = listing.labels
    problems = check_shard(
        partial, start, end - start, lambda i: (
            digests[i], labels[i] if labels is not None else None), table)
    if problems:
        raise RuntimeError(
            f'Shard {partial} does not read back as written: '
            f'{"; ".join(problems)}. Check the disk, then run again.')
    os.replace(partial, path)
    return dict(url=osp.basename(path), nsamples=end - start,
                filesize=out.size, md5sum=out.md5.hexdigest(),
                members_md5=file_md5(table))


def _previous_records(out: str) -> Dict[str, dict]:
    """Shard records of an earlier (possibly interrupted) run in ``out``."""
    records = {}
    for name in (INDEX_NAME, PROGRESS_NAME):
        path = osp.join(out, name)
        if not osp.isfile(path):
            continue
        try:
            with open(path, encoding='utf-8') as f:
                document = json.load(f)
        except (OSError, json.JSONDecodeError):
            continue  # a damaged record: its shards are redone
        for record in document.get('shardlist', []):
            if isinstance(record, dict) and 'url' in record:
                records[record['url']] = record
    return records


def _still_valid(path: str, record: Optional[dict], fingerprint: str) -> bool:
    """A finished shard of an earlier run that can be kept: same sources,
    same size, same md5."""
    table = members_url(path)
    return (record is not None and record.get('fingerprint') == fingerprint
            and osp.isfile(path) and osp.isfile(table)
            and os.path.getsize(path) == record.get('filesize')
            and file_md5(table) == record.get('members_md5')
            and file_md5(path) == record.get('md5sum'))


def convert_to_shards(src: str,
                      out: str,
                      shard_size_mb: float = DEFAULT_SHARD_MB,
                      ann_file: Optional[str] = None,
                      with_label: Optional[bool] = None,
                      progress: Optional[Callable[[int], None]] = None,
                      on_plan: Optional[Callable[[int, int], None]] = None
                      ) -> dict:
    """Write ``out/shard-*.tar`` and ``out/shardindex.json`` from ``src``.

    Args:
        src (str): See :func:`list_source_images`.
        out (str): Output folder (created). Shards of an earlier run that
            still match their sources are kept, the others rewritten.
        shard_size_mb (float): Largest shard, in MB (10**6 bytes; a single
            larger image makes a shard of its own). Defaults to 1000.
        ann_file (str, optional): See :func:`list_source_images`.
        with_label (bool, optional): See :func:`list_source_images`.
        progress (Callable[[int], None], optional): Called with the bytes
            of each image copied (or of each shard kept).
        on_plan (Callable[[int, int], None], optional): Called once with
            the total image bytes and the number of shards.

    Returns:
        dict: ``samples``, ``shards``, ``written``, ``kept``,
        ``image_bytes``, ``labelled``, ``layout``, ``index`` (its path).
    """
    listing = list_source_images(src, ann_file, with_label)
    stats = [os.stat(osp.join(listing.root, p)) for p in listing.paths]
    labelled = listing.labels is not None
    plan = plan_shards([s.st_size for s in stats], labelled,
                       int(shard_size_mb * 1e6))
    total = sum(s.st_size for s in stats)
    if on_plan is not None:
        on_plan(total, len(plan))
    progress = progress or (lambda nbytes: None)
    os.makedirs(out, exist_ok=True)
    previous = _previous_records(out)
    index_path = osp.join(out, INDEX_NAME)
    progress_path = osp.join(out, PROGRESS_NAME)
    if osp.isfile(index_path):  # no index while shards may change
        write_json_atomically(progress_path,
                              dict(shardlist=list(previous.values())))
        os.remove(index_path)
    names = {f(shard_name(n)) for n in range(len(plan))
             for f in (str, members_url)}
    for name in sorted(os.listdir(out)):
        if _OURS.match(name) and name not in names:
            print_log(f'make_shards: removing {name} (not in this '
                      'conversion)', logger='current')
            os.remove(osp.join(out, name))
    shardlist, kept = [], 0
    for number, (start, end) in enumerate(plan):
        path = osp.join(out, shard_name(number))
        fingerprint = _fingerprint(listing, stats, start, end)
        record = previous.get(shard_name(number))
        if _still_valid(path, record, fingerprint):
            kept += 1
            progress(sum(s.st_size for s in stats[start:end]))
        else:
            record = dict(
                _write_shard(listing, stats, start, end, path, progress),
                fingerprint=fingerprint)
        shardlist.append(record)
        previous[record['url']] = record
        write_json_atomically(progress_path,
                              dict(shardlist=list(previous.values())))
    write_json_atomically(
        index_path,
        index_document(
            osp.basename(listing.root), shardlist, len(listing.paths),
            labelled, listing.classes, listing.layout))
    os.remove(progress_path)
    return dict(samples=len(listing.paths), shards=len(plan),
                written=len(plan) - kept, kept=kept, image_bytes=total,
                labelled=labelled, layout=listing.layout, index=index_path)


def verify_index(out: str) -> List[str]:
    """The verification pass after a conversion: every shard the index of
    ``out`` lists has its recorded size and md5, and wids reads from it the
    samples and keys the index says.

    Returns:
        list[str]: The problems found (empty: all is well).
    """
    index = load_shard_index(osp.join(out, INDEX_NAME))
    problems, start = [], 0
    for record in index['shardlist']:
        path, count = record['url'], record['nsamples']
        if not osp.isfile(path):
            problems.append(f'{path}: missing')
        elif os.path.getsize(path) != record.get('filesize'):
            problems.append(f'{path}: {os.path.getsize(path)} bytes, the '
                            f'index says {record.get("filesize")}')
        elif file_md5(path) != record.get('md5sum'):
            problems.append(f'{path}: md5 differs from the index')
        elif not osp.isfile(members_url(path)) or file_md5(
                members_url(path)) != record.get('members_md5'):
            problems.append(f'{members_url(path)}: missing, or its md5 '
                            'differs from the index')
        else:
            problems += check_shard(path, start, count)
        start += count
    if start != index.get('mvp_mm', {}).get('samples', start):
        problems.append(f'the shards hold {start} samples, the index says '
                        f'{index["mvp_mm"]["samples"]}')
    return problems


def verify_against_source(src: str,
                          out: str,
                          ann_file: Optional[str] = None,
                          with_label: Optional[bool] = None) -> List[str]:
    """Compare every sample of the shards in ``out`` with its source file
    (bytes and label): ``tools/make_shards.py SRC OUT --verify``.

    Returns:
        list[str]: The problems found (empty: the shards are the source).
    """
    listing = list_source_images(src, ann_file, with_label)
    index = load_shard_index(osp.join(out, INDEX_NAME))

    def expected(i: int) -> Tuple[bytes, Optional[int]]:
        with open(osp.join(listing.root, listing.paths[i]), 'rb') as f:
            digest = hashlib.md5(f.read()).digest()
        return digest, listing.labels[i] if listing.labels else None

    problems, start = [], 0
    for record in index['shardlist']:
        count = record['nsamples']
        if start + count > len(listing.paths):
            problems.append(f'{record["url"]}: holds samples beyond the '
                            f'{len(listing.paths)} of the source')
            break
        problems += check_shard(record['url'], start, count, expected)
        start += count
    if start < len(listing.paths):
        problems.append(f'the shards hold {start} samples, the source '
                        f'{len(listing.paths)}')
    return problems
