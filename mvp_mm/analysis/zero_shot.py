"""Zero-shot classification and segmentation with an MVP checkpoint.

`MVP <https://arxiv.org/abs/2203.05175>`_'s head maps every student token
(CLS and patches) into CLIP's multimodal space (Eq. 8/9), so MVP plus CLIP's
text tower classifies images (CLS token) and segments them (patch tokens)
with no fine-tuning, exactly like CLIP's own image tower does. Both go
through the same code here: a *token encoder* maps normalised images
``[B, 3, H, W]`` to ``[B, 1 + M, D]`` tokens in CLIP's space, and a text
classifier (CLIP's prompt ensemble,
https://github.com/openai/CLIP/tree/main/notebooks,
via open_clip) scores them.
"""
import os
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence

import open_clip
import torch
import torch.nn.functional as F
from mmcv.transforms import CenterCrop, LoadImageFromFile, Resize
from mmengine.dataset import default_collate
from mmengine.logging import MMLogger
from open_clip.zero_shot_metadata import (IMAGENET_CLASSNAMES,
                                          OPENAI_IMAGENET_TEMPLATES)
from timm.data import ImageNetInfo
from torch import nn
from torch.utils.data import DataLoader

from mmpretrain.datasets import CustomDataset, PackInputs, ResizeEdge
from mmpretrain.evaluation import Accuracy
from mmseg.datasets import ADE20KDataset
from mmseg.datasets.transforms import LoadAnnotations, PackSegInputs
from mmseg.evaluation import IoUMetric
from ..models import CLIPTargetGenerator
from ..models.teachers.pretrained_models import build_open_clip_model
from ..utils.open_clip_logs import open_clip_logs_captured

TokenEncoder = Callable[[torch.Tensor], torch.Tensor]
ADE20K_CLASSES = ADE20KDataset.METAINFO['classes']  # 150 names, label order


def mvp_token_encoders(model: nn.Module) -> Dict[str, TokenEncoder]:
    """MVP's student + head and its CLIP teacher as token encoders.

    Args:
        model (nn.Module): An :class:`MVP` with a CLIP teacher.

    Returns:
        Dict[str, TokenEncoder]: ``{'mvp': ..., 'clip': ...}``; both take the
        images normalised by MVP's data preprocessor.
    """
    if not isinstance(model.target_generator, CLIPTargetGenerator):
        raise ValueError(
            'Zero-shot probes need a CLIP teacher (CLIPTargetGenerator): the '
            f'teacher here is {type(model.target_generator).__name__}, whose '
            'space has no text tower.')
    teacher = model.target_generator
    if teacher.features != 'projected' or teacher.target_norm != 'none':
        raise ValueError(
            'Zero-shot probes need targets in CLIP\'s multimodal space; this '
            f"model was trained on features={teacher.features!r}, "
            f'target_norm={teacher.target_norm!r} (a CLIP-guided variant, '
            "docs/clip_guided_mim.md). Only features='projected', "
            "target_norm='none' (MVP) can be read by the text tower.")

    def mvp(images: torch.Tensor) -> torch.Tensor:
        return model.head(model.extract_feat(images)[0])  # [B, 1 + M, D]

    return dict(mvp=mvp, clip=model.target_generator)


def build_text_model(target_generator: dict) -> nn.Module:
    """The full CLIP (for its text tower) that matches the teacher config.

    Built by the teacher's own rules (:func:`build_open_clip_model`): the
    same weights; where the teacher config falls back to a random CLIP
    (``fallback_to_random=True``, the offline demo), the text tower does
    too, drawn from the same seed as the teacher's.

    Args:
        target_generator (dict): The ``CLIPTargetGenerator`` config (its
            ``model_name``, ``pretrained``, ``fallback_to_random``,
            ``model_overrides`` and ``cache_dir``).
    """
    pretrained = target_generator.get('pretrained', 'openai')
    if pretrained is None:
        MMLogger.get_current_instance().warning(
            '!!! The CLIP text tower is RANDOMLY INITIALISED (pretrained=None)'
            ': zero-shot numbers are meaningless. Use for tests only.')
    model = build_open_clip_model(
        target_generator.get('model_name', 'ViT-B-16-quickgelu'),
        pretrained,
        what='CLIP text tower',
        fix='pass --cfg-options '
        'model.target_generator.pretrained=/path/to/{file}',
        fallback_to_random=target_generator.get('fallback_to_random', False),
        overrides=target_generator.get('model_overrides'),
        cache_dir=target_generator.get('cache_dir'))
    return model.eval()


@torch.no_grad()
def text_classifier(text_model: nn.Module,
                    model_name: str,
                    class_names: Sequence[str],
                    templates: Sequence = OPENAI_IMAGENET_TEMPLATES,
                    device: str = 'cpu') -> torch.Tensor:
    """Unit-norm class embeddings from a prompt ensemble.

    Args:
        text_model (nn.Module): An open_clip CLIP.
        model_name (str): Its open_clip name (selects the tokenizer).
        class_names (Sequence[str]): One name per class.
        templates (Sequence): Prompt templates (format strings or
            callables). Defaults to CLIP's 80 ImageNet templates.
        device (str): Defaults to ``'cpu'``.

    Returns:
        torch.Tensor: ``[K, D]``.
    """
    with open_clip_logs_captured():
        tokenizer = open_clip.get_tokenizer(
            model_name, context_length=text_model.context_length)
        weights = open_clip.build_zero_shot_classifier(
            text_model.to(device), tokenizer, class_names, templates,
            device=device)  # [D, K]
    return weights.t().float()


def imagenet_class_names(folders: Sequence[str]) -> List[str]:
    """CLIP's ImageNet class names for WordNet-id class folders.

    Args:
        folders (Sequence[str]): Class folder names, e.g. ``n01440764``.

    Raises:
        ValueError: A folder is not one of ImageNet-1k's WordNet ids.
    """
    index = {wnid: i for i, wnid in enumerate(ImageNetInfo().label_names())}
    unknown = [f for f in folders if f not in index]
    if unknown:
        raise ValueError(
            f'Class folders {unknown[:5]} are not ImageNet-1k WordNet ids; '
            'pass --class-names FILE (one name per line, in sorted folder '
            'order).')
    return [IMAGENET_CLASSNAMES[index[f]] for f in folders]


def read_class_names(path: str) -> List[str]:
    """One class name per line (mmpretrain's ``classes`` file format)."""
    with open(path, encoding='utf-8') as f:
        return [line.strip() for line in f if line.strip()]


def class_folders(root: str) -> List[str]:
    """The sorted class sub-folders of an ImageNet-format folder."""
    return sorted(d for d in os.listdir(root)
                  if osp.isdir(osp.join(root, d)))


def imagenet_loader(root: str,
                    img_size: int,
                    class_names: Optional[Sequence[str]] = None,
                    batch_size: int = 64,
                    num_workers: int = 4,
                    max_images: Optional[int] = None) -> DataLoader:
    """ImageNet-format images: short side to ``img_size`` (bicubic), centre
    crop, as CLIP evaluates.

    ``root`` is either mmpretrain's ImageNet root (``val/*.JPEG`` and
    ``meta/val.txt``, labels are ImageNet-1k indices: CLIP's 1000 class
    names by default) or a folder of class folders (``<class>/*``; WordNet
    id folders get CLIP's names by default).

    Args:
        root (str): See above.
        img_size (int): The model's input side.
        class_names (Sequence[str], optional): One name per class, in label
            (sorted folder) order. Defaults as above.
        batch_size (int): Defaults to 64.
        num_workers (int): Defaults to 4.
        max_images (int, optional): Only the first N images.

    Returns:
        DataLoader: Its ``dataset.metainfo['classes']`` are the names.
    """
    if osp.isfile(osp.join(root, 'meta', 'val.txt')):
        names = class_names or IMAGENET_CLASSNAMES
        layout = dict(ann_file='meta/val.txt', data_prefix='val')
    else:
        names = class_names or imagenet_class_names(class_folders(root))
        layout = dict(data_prefix='')
    dataset = CustomDataset(
        data_root=root,
        classes=list(names),
        indices=max_images,
        pipeline=[
            LoadImageFromFile(),
            ResizeEdge(scale=img_size, edge='short', backend='pillow',
                       interpolation='bicubic'),
            CenterCrop(crop_size=img_size),
            PackInputs()
        ],
        **layout)
    return DataLoader(dataset, batch_size=batch_size,
                      num_workers=num_workers, collate_fn=default_collate)


def ade20k_loader(root: str,
                  img_size: int,
                  batch_size: int = 16,
                  num_workers: int = 4,
                  max_images: Optional[int] = None) -> DataLoader:
    """ADE20K validation (``images/validation``, ``annotations/validation``),
    images resized to ``img_size`` square; labels 1..150 -> 0..149, 0 -> 255
    (ignored), at the original resolution."""
    dataset = ADE20KDataset(
        data_root=root,
        data_prefix=dict(img_path='images/validation',
                         seg_map_path='annotations/validation'),
        indices=max_images,
        pipeline=[
            LoadImageFromFile(),
            Resize(scale=(img_size, img_size), keep_ratio=False),
            LoadAnnotations(),
            PackSegInputs()
        ])
    if len(dataset) == 0:
        raise FileNotFoundError(
            f'No ADE20K validation images under {root!r}: expected '
            'images/validation/*.jpg and annotations/validation/*.png.')
    return DataLoader(dataset, batch_size=batch_size,
                      num_workers=num_workers, collate_fn=default_collate)


def _inputs(data_preprocessor: nn.Module, data: dict) -> torch.Tensor:
    inputs = data_preprocessor(data, False)['inputs']
    return inputs[0] if isinstance(inputs, (list, tuple)) else inputs


@torch.no_grad()
def zero_shot_classification(
        encoders: Dict[str, TokenEncoder], classifier: torch.Tensor,
        loader: DataLoader,
        data_preprocessor: nn.Module) -> Dict[str, Dict[str, float]]:
    """Top-1 / top-5 (%) of each encoder's CLS token against the classes.

    Args:
        encoders (Dict[str, TokenEncoder]): Name -> token encoder.
        classifier (torch.Tensor): ``[K, D]`` unit-norm class embeddings.
        loader (DataLoader): From :func:`imagenet_loader`.
        data_preprocessor (nn.Module): Normalises the batches.

    Returns:
        Dict[str, Dict[str, float]]: ``{name: {'top1': ..., 'top5': ...}}``.
    """
    topk = tuple(k for k in (1, 5) if k <= classifier.shape[0])
    correct = {name: torch.zeros(len(topk)) for name in encoders}
    seen = 0
    for data in loader:
        images = _inputs(data_preprocessor, data)
        labels = torch.cat([s.gt_label for s in data['data_samples']])
        for name, encode in encoders.items():
            cls = F.normalize(encode(images)[:, 0].float(), dim=-1)  # [B, D]
            scores = (cls @ classifier.t()).cpu()  # [B, K]
            accuracy = Accuracy.calculate(scores, labels, topk=topk)  # %
            correct[name] += torch.cat([a[0] for a in accuracy]) * len(labels)
        seen += len(labels)
    return {
        name: {f'top{k}': float(c / seen) for k, c in zip(topk, counts)}
        for name, counts in correct.items()
    }


@torch.no_grad()
def zero_shot_segmentation(
        encoders: Dict[str, TokenEncoder], classifier: torch.Tensor,
        loader: DataLoader, data_preprocessor: nn.Module,
        class_names: Sequence[str]) -> Dict[str, Dict[str, float]]:
    """mIoU (%) of each encoder's per-patch predictions.

    Every patch token is classified against the text embeddings; the
    ``[K, h, w]`` scores are upsampled (bilinear) to the label's resolution
    and the arg-max compared with it by mmseg's ``IoUMetric``.

    Args:
        encoders (Dict[str, TokenEncoder]): Name -> token encoder.
        classifier (torch.Tensor): ``[K, D]`` unit-norm class embeddings.
        loader (DataLoader): From :func:`ade20k_loader`.
        data_preprocessor (nn.Module): Normalises the batches.
        class_names (Sequence[str]): The ``K`` class names (for the log).

    Returns:
        Dict[str, Dict[str, float]]: ``{name: {'mIoU', 'mAcc', 'aAcc'}}``.
    """
    metrics = {}
    for name in encoders:
        metrics[name] = IoUMetric(iou_metrics=['mIoU'])
        metrics[name].dataset_meta = dict(classes=list(class_names))
    for data in loader:
        images = _inputs(data_preprocessor, data)
        for name, encode in encoders.items():
            patches = F.normalize(encode(images)[:, 1:].float(), dim=-1)
            scores = patches @ classifier.t()  # [B, M, K]
            side = round(scores.shape[1]**0.5)  # square inputs, square grid
            scores = scores.transpose(1, 2).reshape(
                len(images), -1, side, side)  # [B, K, h, w]
            results = []
            for score, sample in zip(scores, data['data_samples']):
                pred = F.interpolate(score[None], size=sample.ori_shape,
                                     mode='bilinear',
                                     align_corners=False)[0].argmax(0)
                results.append(dict(
                    pred_sem_seg=dict(data=pred.cpu()),
                    gt_sem_seg=dict(data=sample.gt_sem_seg.data)))
            metrics[name].process(data, results)
    return {
        name: {k: float(v) for k, v in
               metric.compute_metrics(metric.results).items()}
        for name, metric in metrics.items()
    }
