"""Check the files a dataset config reads, before anything is built.

mmpretrain and mmseg look at the data only when the dataset is built, after
the model (and MVP's teacher), and their errors name neither the config key
nor the layout they expected (``No such file or directory``, ``The number of
subfolders (0) doesn't match the number of specified classes (1000)``). An
annotation file that lists a missing image, or an image without its label
map, surfaces only when training reaches that sample.
:func:`check_dataset_folders` checks all of that first and describes the
layout of the dataset type the config reads.
"""
import inspect
import json
import logging
import os
import os.path as osp
from typing import Iterator, List, Optional, Sequence, Tuple, Union

from mmengine.logging import print_log

from mmpretrain.datasets import CustomDataset, ImageNet
from mmpretrain.registry import DATASETS as PRETRAIN_DATASETS
from mmpretrain.registry import TRANSFORMS
from mmseg.datasets import ADE20KDataset, BaseSegDataset
from mmseg.registry import DATASETS as SEG_DATASETS

from .shard_index import (MAKE_SHARDS_FIX, index_layout, is_local,
                          load_shard_index, local_path, members_url)

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif',
                    '.tiff', '.webp')
NAMED = 5  # missing files named in an error; the rest are counted

IMAGENET_LAYOUT = (
    "ImageNet layout (type='ImageNet'): <data_root>/train/<wnid>/*.JPEG, one "
    'folder per class (1000), and <data_root>/val/*.JPEG with their labels '
    "in <data_root>/meta/val.txt ('<file> <label>' lines; a meta/train.txt "
    'is read likewise if present). For another number of class folders use '
    "type='CustomDataset'.")
CUSTOM_LAYOUT = (
    "CustomDataset layout: <data_root>/<data_prefix>/<class>/<image>, one "
    "folder per class; or an ann_file of '<image path> <label>' lines, "
    'paths relative to <data_root>/<data_prefix>; with with_label=False, '
    'every image under <data_root>/<data_prefix>, no labels.')
UNLABELLED_LAYOUT = (
    "Unlabelled layout (type='CustomDataset', with_label=False): "
    '<data_root>/<data_prefix>/**/<image>, images in any sub-folders (or '
    'none), read in sorted path order, no labels; what MVP pre-training '
    'needs (configs/pretrain/mvp_vit-b16_300e_unlabelled.py).')
ADE20K_LAYOUT = (
    "ADE20K layout (ADEChallengeData2016, type='ADE20KDataset'): "
    '<data_root>/images/{training,validation}/*.jpg and '
    '<data_root>/annotations/{training,validation}/*.png, one label map per '
    'image, same file name.')

_PASSED = set()  # checks that passed in this process (see _fingerprint)


def _dataset_class(dataset_type) -> Optional[type]:
    """The registered class of a config's ``type`` (mmpretrain or mmseg)."""
    if isinstance(dataset_type, type):
        return dataset_type
    name = str(dataset_type).split('.')[-1]  # 'mmseg.ADE20KDataset'
    return PRETRAIN_DATASETS.get(name) or SEG_DATASETS.get(name)


def _is(cls: Optional[type], base: type) -> bool:
    return cls is not None and issubclass(cls, base)


def _default(cls: type, cfg: dict, name: str):
    """``cfg[name]``, else the default of ``cls``' constructor."""
    if name in cfg:
        return cfg[name]
    for klass in cls.__mro__:
        parameter = inspect.signature(klass.__init__).parameters.get(name)
        if parameter is not None:
            return parameter.default
    return None


def _layout(cls: Optional[type], cfg: dict) -> str:
    from .shard_dataset import ShardDataset
    if _is(cls, ShardDataset):
        return index_layout()
    if _is(cls, ImageNet):
        return IMAGENET_LAYOUT
    if _is(cls, ADE20KDataset):
        return ADE20K_LAYOUT
    if _is(cls, CustomDataset):
        return CUSTOM_LAYOUT
    if _is(cls, BaseSegDataset):
        return (f'{cls.__name__} layout: <data_root>/<data_prefix.img_path>/'
                f'*{_default(cls, cfg, "img_suffix")}, with a label map '
                '<data_root>/<data_prefix.seg_map_path>/<same name>'
                f'{_default(cls, cfg, "seg_map_suffix")} for each image.')
    return ''


def _leaf_datasets(cfg: Union[dict, List[dict]],
                   key: str) -> Iterator[Tuple[dict, str]]:
    """The datasets inside wrappers (``RepeatDataset``, ``ConcatDataset``),
    each with its config key."""
    if isinstance(cfg, (list, tuple)):
        for index, item in enumerate(cfg):
            yield from _leaf_datasets(item, f'{key}[{index}]')
    elif isinstance(cfg, dict):
        if 'dataset' in cfg:
            yield from _leaf_datasets(cfg['dataset'], f'{key}.dataset')
        elif 'datasets' in cfg:
            yield from _leaf_datasets(cfg['datasets'], f'{key}.datasets')
        else:
            yield cfg, key


def _join(root: str, path: str) -> str:
    return path if not root or osp.isabs(path) else osp.join(root, path)


def _contains_file(folder: str, suffixes: Sequence[str]) -> bool:
    """Whether any file below ``folder`` ends with a suffix (stops at the
    first)."""
    for _, _, files in os.walk(folder, followlinks=True):
        if any(f.lower().endswith(suffixes) for f in files):
            return True
    return False


def _missing_files(folder: str,
                   names: Sequence[str]) -> Tuple[int, List[str]]:
    """How many of ``folder/name`` do not exist, and the first of them.

    Each directory is listed once instead of each file being stat-ed: one
    ``listdir`` per class folder for ImageNet's 1.28M-line train.txt.
    """
    listings = {}
    count, first = 0, []
    for name in names:
        directory, _, base = name.rpartition('/')  # 5x faster than split
        if directory not in listings:
            try:
                listings[directory] = set(
                    os.listdir(osp.join(folder, directory)))
            except OSError:  # missing, or not a directory
                listings[directory] = set()
        if base not in listings[directory]:
            count += 1
            if len(first) < NAMED:
                first.append(osp.join(folder, name))
    return count, first


def _read_lines(path: str) -> List[str]:
    with open(path, encoding='utf-8') as f:
        return [line.strip() for line in f if line.strip()]


def _skips_unreadable_images(cfg: dict) -> bool:
    """Whether the pipeline skips images it cannot read (missing ones too):
    ``CheckedLoadImageFromFile(on_error='skip')`` or a subclass of it, such
    as ``RandomResizedCropFromFile``."""
    from .transforms import CheckedLoadImageFromFile
    for step in cfg.get('pipeline') or []:
        if not (isinstance(step, dict) and step.get('on_error') == 'skip'):
            continue
        kind = step.get('type')
        if isinstance(kind, str):
            kind = TRANSFORMS.get(kind)
        if inspect.isclass(kind) and issubclass(kind,
                                                CheckedLoadImageFromFile):
            return True
    return False


def _raise_if_missing(folder: str,
                      names: Sequence[str],
                      what: str,
                      fix: str,
                      skipped: bool = False) -> None:
    """Raise (or, for images the pipeline skips, warn) if any of
    ``folder/name`` is missing."""
    count, first = _missing_files(folder, names)
    if not count:
        return
    message = (f'{count} of the {len(names)} {what} do not exist, e.g. '
               f'{", ".join(first)}.')
    if not skipped:
        raise FileNotFoundError(f'{message} {fix}')
    print_log(
        f"{message} The pipeline skips them (on_error='skip'): each one "
        'drawn is replaced by another sample, so the epoch holds fewer '
        'distinct images.', logger='current', level=logging.WARNING)


def _check_folder(path: str, what: str, fix: str) -> None:
    if not osp.isdir(path):
        raise FileNotFoundError(f'{what} {path!r} does not exist. {fix}')


def _check_ann_file(root: str, ann_file: str, key: str,
                    layout: str) -> str:
    path = _join(root, ann_file)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'Annotation file {path!r} ({key}.ann_file) does not exist. Set '
            f"{key}.ann_file to an existing file, or to '' to read the "
            f'folders directly. {layout}')
    return path


def _check_classification(cfg: dict, cls: type, key: str, fix: str,
                          layout: str) -> None:
    """mmpretrain's CustomDataset and its subclasses (ImageNet)."""
    root = cfg.get('data_root', '') or ''
    prefix = cfg.get('data_prefix', '') or ''
    if isinstance(prefix, dict):
        prefix = prefix.get('img_path', '') or ''
    split = (cfg.get('split', '') or '') if _is(cls, ImageNet) else ''
    folder = _join(root, prefix or split) or '.'  # '': paths from cwd
    ann_file = cfg.get('ann_file', '') or ''
    if split and not ann_file and \
            osp.isfile(osp.join(root, 'meta', f'{split}.txt')):
        ann_file = osp.join('meta', f'{split}.txt')  # as ImageNet does
    with_label = cfg.get('with_label', True) and split != 'test'
    _check_folder(folder, f'Image folder ({key}.data_prefix under data_root)',
                  fix)
    if ann_file:
        path = _check_ann_file(root, ann_file, key, layout)
        lines = _read_lines(path)
        names = [line.rsplit(' ', 1)[0] for line in lines] \
            if with_label else lines
        _raise_if_missing(
            folder, names, f'images listed in {path!r} ({key}.ann_file)',
            f'Fix the list, or the images under {folder!r}. {layout}',
            skipped=_skips_unreadable_images(cfg))
        return
    if not _contains_file(folder, IMAGE_EXTENSIONS):
        raise FileNotFoundError(
            f'No images ({", ".join(IMAGE_EXTENSIONS)}) under {folder!r} '
            f'({key}): the folder is empty. {fix}')
    if with_label and split != 'val':  # ImageNet's val/: see its layout
        _check_images_outside_class_folders(folder, cls, key)
    classes = cfg.get('classes') or (cfg.get('metainfo') or {}).get(
        'classes') or getattr(cls, 'METAINFO', {}).get('classes')
    if with_label and classes and not isinstance(classes, str):
        found = [e.name for e in os.scandir(folder) if e.is_dir()]
        if len(found) != len(classes):
            raise ValueError(
                f'{folder!r} ({key}) holds {len(found)} class folders, but '
                f'{cls.__name__} reads {len(classes)} classes. {layout}')


def _check_images_outside_class_folders(folder: str, cls: type,
                                        key: str) -> None:
    """Images directly in a folder read by class: an unlabelled collection
    (an error), or images beside the class folders (left out: a
    warning)."""
    entries = list(os.scandir(folder))
    loose = [e.name for e in entries
             if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS)]
    if not loose:
        return
    if not any(e.is_dir() for e in entries):
        raise ValueError(
            f'{folder!r} ({key}) holds images ({loose[0]}, ...) and no class '
            f'folders: an unlabelled collection, which {cls.__name__} reads '
            'by class folder and so finds empty. MVP pre-training uses no '
            'labels: train with configs/pretrain/'
            'mvp_vit-b16_300e_unlabelled.py, or set '
            f"{key}.type='CustomDataset', {key}.with_label=False and "
            f'{key}.data_prefix to this folder. {UNLABELLED_LAYOUT}')
    print_log(
        f'{len(loose)} images directly in {folder!r} ({key}), e.g. '
        f'{loose[0]}, are in no class folder: {cls.__name__} leaves them '
        'out. Move them into class folders, or read the folder with '
        f'with_label=False. {UNLABELLED_LAYOUT}', logger='current',
        level=logging.WARNING)


def _check_shards(cfg: dict, cls: type, key: str, fix: str) -> None:
    """:class:`ShardDataset`: the index exists and lists shards; each local
    shard exists with the size the index gives (missing or truncated ones
    are skipped by a skipping pipeline: a warning)."""
    root = cfg.get('data_root', '') or ''
    path = _join(root, _default(cls, cfg, 'ann_file') or '')
    if '://' in path:
        return
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'Shard index {path!r} ({key}.ann_file under data_root) does not '
            f'exist. {fix}')
    shardlist = load_shard_index(path)['shardlist']
    cut, other, untabled = [], [], []
    for record in shardlist:
        url, expected = record['url'], record.get('filesize')
        if not is_local(url):
            continue
        shard = local_path(url)
        if not osp.isfile(local_path(members_url(url))):
            untabled.append(shard)
        size = os.path.getsize(shard) if osp.isfile(shard) else None
        if size is None or expected is not None and size < expected:
            cut.append(f'{shard} ({"missing" if size is None else size} '
                       f'{"" if size is None else "bytes "}where the index '
                       f'says {expected} bytes)')
        elif expected is not None and size != expected:
            other.append(f'{shard} ({size} bytes, the index says '
                         f'{expected})')
    where = f'of the {len(shardlist)} shards in {path!r} ({key}.ann_file)'
    if untabled:
        print_log(
            f'{len(untabled)} {where} have no member table beside them '
            f'(e.g. {members_url(untabled[0])}): each data worker scans '
            'such a shard whenever it opens it (about 1 s per GB). '
            'tools/make_shards.py writes the tables.', logger='current',
            level=logging.WARNING)
    if other:
        raise ValueError(
            f'{len(other)} {where} do not match the index, e.g. '
            f'{", ".join(other[:NAMED])}. {MAKE_SHARDS_FIX}')
    if not cut:
        return
    message = (f'{len(cut)} {where} are missing or truncated, e.g. '
               f'{", ".join(cut[:NAMED])}.')
    if not _skips_unreadable_images(cfg):
        raise FileNotFoundError(
            f'{message} Copy them again, or {MAKE_SHARDS_FIX[0].lower()}'
            f'{MAKE_SHARDS_FIX[1:]}')
    print_log(
        f"{message} The pipeline skips their samples (on_error='skip'): "
        'each one drawn is replaced by another, so the epoch holds fewer '
        'distinct images.', logger='current', level=logging.WARNING)


def _check_segmentation(cfg: dict, cls: type, key: str, fix: str,
                        layout: str) -> None:
    """mmseg's BaseSegDataset and its subclasses (ADE20KDataset)."""
    root = cfg.get('data_root', '') or ''
    prefix = cfg.get('data_prefix') or {}
    img_suffix = _default(cls, cfg, 'img_suffix')
    seg_suffix = _default(cls, cfg, 'seg_map_suffix')
    img_dir = _join(root, prefix.get('img_path', '') or '') or '.'
    seg_dir = prefix.get('seg_map_path')
    _check_folder(img_dir, f'Image folder ({key}.data_prefix.img_path)', fix)
    if seg_dir is not None:
        seg_dir = _join(root, seg_dir)
        _check_folder(seg_dir,
                      f'Label map folder ({key}.data_prefix.seg_map_path)',
                      fix)
    ann_file = cfg.get('ann_file', '') or ''
    if ann_file and not osp.isdir(_join(root, ann_file)):
        path = _check_ann_file(root, ann_file, key, layout)
        names = _read_lines(path)
        _raise_if_missing(
            img_dir, [n + img_suffix for n in names],
            f'images listed in {path!r} ({key}.ann_file)',
            f'Fix the list, or the images under {img_dir!r}. {layout}',
            skipped=_skips_unreadable_images(cfg))
    else:
        names = sorted(  # as mmseg lists them: recursive, by suffix
            osp.relpath(osp.join(parent, f[:len(f) - len(img_suffix)]),
                        img_dir)
            for parent, _, files in os.walk(img_dir, followlinks=True)
            for f in files if f.endswith(img_suffix))
        if not names:
            raise FileNotFoundError(
                f'No *{img_suffix} images under {img_dir!r} ({key}): the '
                f'folder is empty. {fix}')
    if seg_dir is not None:
        _raise_if_missing(
            seg_dir, [n + seg_suffix for n in names],
            f'label maps of the images in {img_dir!r} ({key})',
            f'Each image needs its label map. {layout}')


def _fingerprint(cfg: dict, key: str) -> str:
    return key + json.dumps(cfg, sort_keys=True, default=str)


def check_dataset_folders(dataset_cfg: Union[dict, List[dict]],
                          key: str = 'train_dataloader.dataset') -> None:
    """Raise a clear error for data a dataset config cannot read.

    For each dataset in ``dataset_cfg`` (inside ``RepeatDataset`` /
    ``ConcatDataset`` wrappers too): ``data_root`` exists; then, by type,

    - mmpretrain ``CustomDataset`` / ``ImageNet``: the image folder exists;
      with an ``ann_file`` (``ImageNet`` also reads ``meta/<split>.txt``),
      every image it lists exists; without one, the folder holds images in
      as many class folders as the type reads classes (1000 for
      ``ImageNet``), and, with labels, images directly in the folder with
      no class folders are an unlabelled collection (an error giving its
      layout and the fix), beside class folders they are left out (a
      warning);
    - :class:`ShardDataset`: the shard index exists and lists shards, and
      each local shard exists with the size the index gives (a missing or
      truncated shard is a warning if the pipeline skips unreadable
      images);
    - mmseg datasets (``ADE20KDataset``): the image and label map folders
      exist, hold the images (or those ``ann_file`` lists), and every image
      has its label map;
    - other types: ``ann_file``, if set, exists.

    Each error names the config key, the missing path(s) and the layout of
    the dataset type. Each directory is listed once, however many files an
    annotation file lists. Remote paths (``s3://`` etc.) are not checked; a
    check that passed is not repeated in the same process.

    Args:
        dataset_cfg (dict | list[dict]): A dataset config, e.g.
            ``cfg.train_dataloader.dataset``.
        key (str): Its config key, for the messages. Defaults to
            ``'train_dataloader.dataset'``.

    Raises:
        FileNotFoundError: A folder, annotation file, listed image or label
            map is missing, or an image folder is empty.
        ValueError: ``ImageNet`` (or a dataset with given classes) finds
            another number of class folders.
    """
    from .shard_dataset import ShardDataset
    for cfg, leaf_key in _leaf_datasets(dataset_cfg, key):
        fingerprint = _fingerprint(cfg, leaf_key)
        root = cfg.get('data_root', '') or ''
        if fingerprint in _PASSED or '://' in root:
            continue
        cls = _dataset_class(cfg.get('type'))
        layout = _layout(cls, cfg)
        fix = (f'Point {leaf_key}.data_root at the dataset (--cfg-options '
               f'{leaf_key}.data_root=/path/to/data/). {layout}').strip()
        if root and not osp.isdir(root):
            raise FileNotFoundError(
                f'Data root {root!r} ({leaf_key}.data_root) does not exist. '
                f'{fix}')
        if _is(cls, ShardDataset):
            _check_shards(cfg, cls, leaf_key, fix)
        elif _is(cls, CustomDataset):
            _check_classification(cfg, cls, leaf_key, fix, layout)
        elif _is(cls, BaseSegDataset):
            _check_segmentation(cfg, cls, leaf_key, fix, layout)
        elif cfg.get('ann_file') and '://' not in cfg['ann_file']:
            _check_ann_file(root, cfg['ann_file'], leaf_key, layout)
        _PASSED.add(fingerprint)


def check_dataloader_data(cfg: dict, loops: Sequence[str]) -> None:
    """:func:`check_dataset_folders` for each ``<loop>_dataloader`` of a
    config (or a runner's arguments) that is set.

    Args:
        cfg (dict): Holds ``train_dataloader`` etc.
        loops (Sequence[str]): E.g. ``('train', 'val')``.
    """
    for loop in loops:
        dataloader = cfg.get(f'{loop}_dataloader')
        if isinstance(dataloader, dict) and dataloader.get('dataset'):
            check_dataset_folders(dataloader['dataset'],
                                  f'{loop}_dataloader.dataset')
