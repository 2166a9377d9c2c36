"""Check a dataset config's folders before the runner builds anything."""
import os
import os.path as osp
from typing import Iterator, List, Union

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif',
                    '.tiff', '.webp')


def _contains_image(folder: str) -> bool:
    """Whether any file below ``folder`` is an image (stops at the first)."""
    for _, _, files in os.walk(folder, followlinks=True):
        if any(f.lower().endswith(IMAGE_EXTENSIONS) for f in files):
            return True
    return False


def _leaf_datasets(cfg: Union[dict, List[dict]]) -> Iterator[dict]:
    """The datasets inside wrappers (``RepeatDataset``, ``ConcatDataset``)."""
    if isinstance(cfg, (list, tuple)):
        for item in cfg:
            yield from _leaf_datasets(item)
    elif isinstance(cfg, dict):
        if 'dataset' in cfg:
            yield from _leaf_datasets(cfg['dataset'])
        elif 'datasets' in cfg:
            yield from _leaf_datasets(cfg['datasets'])
        else:
            yield cfg


def _join(root: str, path: str) -> str:
    return path if not root or osp.isabs(path) else osp.join(root, path)


def check_dataset_folders(dataset_cfg: Union[dict, List[dict]],
                          key: str = 'train_dataloader.dataset') -> None:
    """Raise a clear error for a missing or empty data root.

    Checks, for each dataset in ``dataset_cfg``: ``data_root`` exists; every
    ``data_prefix`` folder (``img_path``, ``seg_map_path``...) exists; the
    image folder holds at least one image; a non-empty ``ann_file`` exists.
    Remote paths (``s3://`` etc.) are not checked. mmpretrain's own errors
    for these cases (``No such file or directory``, ``The number of
    subfolders (0) doesn't match ... (1000)``) say neither which config key
    is wrong nor how to fix it.

    Args:
        dataset_cfg (dict | list[dict]): A dataset config, e.g.
            ``cfg.train_dataloader.dataset``.
        key (str): Its config key, for the message. Defaults to
            ``'train_dataloader.dataset'``.
    """
    fix = (f'Point {key}.data_root at your dataset, e.g. --cfg-options '
           f'{key}.data_root=/path/to/imagenet/ (ImageNet layout: '
           'train/<class>/<image>.JPEG).')
    for cfg in _leaf_datasets(dataset_cfg):
        root = cfg.get('data_root', '') or ''
        if '://' in root:
            continue
        if root and not osp.isdir(root):
            raise FileNotFoundError(
                f'Data root {root!r} ({key}.data_root) does not exist. {fix}')
        # ImageNet's `split` is its data_prefix when that is left empty.
        prefix = cfg.get('data_prefix', '') or cfg.get('split', '') or ''
        folders = prefix if isinstance(prefix, dict) else dict(img_path=prefix)
        for name, folder in folders.items():
            path = _join(root, folder)
            if not osp.isdir(path):
                raise FileNotFoundError(
                    f'Folder {path!r} ({key}.data_prefix {name!r} under '
                    f'data_root) does not exist. {fix}')
        image_folder = _join(root, folders.get('img_path', ''))
        if not _contains_image(image_folder):
            raise FileNotFoundError(
                f'No images ({", ".join(IMAGE_EXTENSIONS)}) under '
                f'{image_folder!r} ({key}): the data root is empty. {fix}')
        ann_file = cfg.get('ann_file', '') or ''
        if ann_file and not osp.isfile(_join(root, ann_file)):
            raise FileNotFoundError(
                f'Annotation file {_join(root, ann_file)!r} ({key}.ann_file) '
                f'does not exist. Set {key}.ann_file to an existing file, '
                "or to '' to read the class folders directly.")
