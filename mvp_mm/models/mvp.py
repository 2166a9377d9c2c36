"""MVP: Multimodality-guided Visual Pre-training."""
from typing import Dict, List, Optional, Union

import torch
from torch import nn

from mmpretrain.models import BaseSelfSupervisor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample


@MODELS.register_module()
class MVP(BaseSelfSupervisor):
    """MVP self-supervised pre-training.

    Implementation of `MVP: Multimodality-guided Visual Pre-training
    <https://arxiv.org/abs/2203.05175>`_ (Wei et al., ECCV 2022): a BEiT-style
    student (mmpretrain's ``BEiTPretrainViT``) sees blockwise-masked images;
    a one-layer head maps every output token into the space of a frozen
    teacher (CLIP's vision tower, :class:`CLIPTargetGenerator`) that sees the
    unmasked image; Eq. 9 aligns them token by token.

    The same class runs MVP's CLIP-guided relatives (MaskDistill, Feature
    Distillation; ``docs/clip_guided_mim.md``) through options of the
    teacher (``features``, ``target_norm``) and the loss (``patches``,
    ``cls``, ``criterion``). A pipeline with no mask generator (no ``mask``
    in the data samples) shows the student whole images.

    ``MVP`` wires the parts together so that they cannot disagree: the head's
    ``in_channels`` / ``out_channels`` are filled from the backbone and the
    teacher when left out, the teacher is told the data preprocessor's
    mean/std, and a student/teacher patch-grid mismatch is an error.

    Args:
        backbone (dict): The student, e.g. ``BEiTPretrainViT``.
        head (dict): :class:`MVPHead` config.
        target_generator (dict): The frozen teacher config.
        data_preprocessor (dict, optional): Defaults to
            ``SelfSupDataPreprocessor``.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 backbone: dict,
                 head: dict,
                 target_generator: dict,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if not isinstance(target_generator, nn.Module):
            target_generator = MODELS.build(target_generator)
        if not isinstance(backbone, nn.Module):
            backbone = MODELS.build(backbone)
        if isinstance(head, dict):
            head = dict(head)
            head.setdefault('in_channels', backbone.embed_dims)
            head.setdefault('out_channels', target_generator.out_dims)
            self._check_head(head, backbone, target_generator)
        super().__init__(
            backbone=backbone,
            head=head,
            target_generator=target_generator,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self._check_patch_grids()
        if getattr(self.data_preprocessor, '_enable_normalize', False):
            self.target_generator.set_input_normalization(
                self.data_preprocessor.mean.flatten().tolist(),
                self.data_preprocessor.std.flatten().tolist())

    @staticmethod
    def _check_head(head: dict, backbone: nn.Module,
                    target_generator: nn.Module) -> None:
        if head['in_channels'] != backbone.embed_dims:
            raise ValueError(
                f"MVP head in_channels={head['in_channels']} but the backbone "
                f'width is {backbone.embed_dims}: drop head.in_channels from '
                'the config (it is filled in) or make them equal.')
        if head['out_channels'] != target_generator.out_dims:
            raise ValueError(
                f"MVP head out_channels={head['out_channels']} but the teacher "
                f'embeds into {target_generator.out_dims} dims: drop '
                'head.out_channels from the config (it is filled in).')

    def _check_patch_grids(self) -> None:
        student = tuple(self.backbone.patch_resolution)
        size = self.target_generator.img_size
        patch = self.target_generator.patch_size
        teacher = (size // patch, ) * 2
        if student != teacher:
            raise ValueError(
                f'The student sees a {student} patch grid but the teacher '
                f'({size} px, patch {patch}) a {teacher} grid; Eq. 9 pairs '
                'tokens one to one. Make backbone.img_size / patch_size give '
                'the teacher grid (224 px / 16 for CLIP ViT-B/16), or set '
                'target_generator.model_overrides to resize the teacher.')
        if size % patch:
            raise ValueError(
                f'Input size {size} px is not divisible by the patch size '
                f'{patch}: the last {size % patch} px of every row and column '
                f'would be dropped. Use a multiple of {patch} (224 for '
                'ViT-B/16) for backbone.img_size, the teacher and the crops.')
        student_px = tuple(getattr(self.backbone, 'img_size', (size, size)))
        if student_px != (size, size):
            raise ValueError(
                f'The student is built for {student_px} px input but the '
                f'teacher for {size} px, and both see the same images. Make '
                'backbone.img_size equal the teacher input size (CLIP: '
                'target_generator.model_overrides.vision_cfg.image_size).')

    def _check_inputs(self, imgs: torch.Tensor,
                      mask: Optional[torch.Tensor]) -> None:
        size = tuple(getattr(self.backbone, 'img_size', imgs.shape[-2:]))
        grid = tuple(self.backbone.patch_resolution)
        mask_grid = grid if mask is None else tuple(mask.shape[-2:])
        if tuple(imgs.shape[-2:]) != size or mask_grid != grid:
            raise ValueError(
                f'MVP is built for {size} px images and {grid} masks, but got '
                f'{tuple(imgs.shape[-2:])} px images and {mask_grid} masks. '
                'Make the pipeline crop (RandomResizedCrop scale / CenterCrop '
                'crop_size) equal model.backbone.img_size, and '
                'BlockwiseMaskGenerator input_size equal img_size // '
                'patch_size.')

    @staticmethod
    def _images_and_masks(inputs: Union[torch.Tensor, List[torch.Tensor]],
                          data_samples: List[DataSample]):
        """``[B, 3, H, W]`` images and ``[B, h, w]`` masks (1 = masked), or
        ``None`` when the pipeline has no mask generator (nothing masked, as
        in Feature Distillation)."""
        imgs = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        masked = ['mask' in ds for ds in data_samples]
        if not any(masked):
            return imgs, None
        if not all(masked):
            raise ValueError(
                f'{masked.count(False)} of {len(masked)} data samples carry no '
                '`mask`: either every sample is masked (BlockwiseMaskGenerator '
                'in the pipeline) or none is.')
        return imgs, torch.stack([ds.mask for ds in data_samples])

    def _student_view(self, imgs: torch.Tensor,
                      mask: Optional[torch.Tensor]) -> torch.Tensor:
        """Student tokens ``[B, 1 + M, C]``. No mask = nothing masked: an
        all-zero mask computes the unmasked forward and keeps the mask token
        in the graph (with a zero gradient), so DDP needs no
        ``find_unused_parameters``."""
        if mask is None:
            mask = imgs.new_zeros(
                (imgs.size(0), *self.backbone.patch_resolution),
                dtype=torch.bool)  # [B, h, w], 1 = masked
        return self.backbone(imgs, mask)[0]

    def forward(self,
                inputs: Union[torch.Tensor, List[torch.Tensor]],
                data_samples: Optional[List[DataSample]] = None,
                mode: str = 'tensor'):
        """``'tensor'``, ``'loss'``, or ``'predict'`` (:meth:`predict`)."""
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        return super().forward(inputs, data_samples, mode)

    def extract_feat(self, inputs: torch.Tensor):
        """Backbone features without masking (for analysis and probes)."""
        return self.backbone(inputs, mask=None)

    def loss(self, inputs: Union[torch.Tensor, List[torch.Tensor]],
             data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """Eq. 9 between the masked student and the frozen teacher.

        Args:
            inputs (torch.Tensor | List[torch.Tensor]): Images
                ``[B, 3, H, W]`` (or a one-view list of them).
            data_samples (List[DataSample]): Each holds ``mask`` ``[h, w]``,
                or none does (the student sees the whole image).

        Returns:
            Dict[str, torch.Tensor]: ``{'loss': ...}``.
        """
        imgs, mask = self._images_and_masks(inputs, data_samples)
        self._check_inputs(imgs, mask)
        latent = self._student_view(imgs, mask)  # [B, 1 + M, C]
        target = self.target_generator(imgs)  # [B, 1 + M, D], no grad
        loss = self.head.loss(latent, target,
                              None if mask is None else mask.flatten(1))
        return dict(loss=loss)

    @torch.no_grad()
    def alignment(self, imgs: torch.Tensor,
                  mask: Optional[torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Student-teacher cosine per image: the health check of a run.

        Args:
            imgs (torch.Tensor): ``[B, 3, H, W]``, preprocessed.
            mask (torch.Tensor, optional): ``[B, h, w]``, 1 = masked;
                ``None``: nothing masked.

        Returns:
            Dict[str, torch.Tensor]: ``cls``, ``masked`` (only with a mask)
            and ``visible`` mean cosine per image, each ``[B]``.
        """
        self._check_inputs(imgs, mask)
        latent = self._student_view(imgs, mask)  # [B, 1 + M, C]
        pred = self.head(latent).float()  # [B, 1 + M, D]
        target = self.target_generator(imgs)  # [B, 1 + M, D]
        cos = torch.nn.functional.cosine_similarity(pred, target, dim=-1)
        patches = cos[:, 1:]
        if mask is None:
            return dict(cls=cos[:, 0], visible=patches.mean(1))
        masked = mask.flatten(1).to(cos.dtype)  # [B, M], 1 = masked
        return dict(
            cls=cos[:, 0],
            masked=(patches * masked).sum(1) / masked.sum(1).clamp(min=1),
            visible=(patches * (1 - masked)).sum(1) /
            (1 - masked).sum(1).clamp(min=1))

    def predict(self, inputs: Union[torch.Tensor, List[torch.Tensor]],
                data_samples: List[DataSample]) -> List[DataSample]:
        """Attach :meth:`alignment` to each sample as ``alignment``."""
        imgs, mask = self._images_and_masks(inputs, data_samples)
        scores = self.alignment(imgs, mask)
        for i, sample in enumerate(data_samples):
            sample.set_field({k: v[i] for k, v in scores.items()},
                             'alignment', field_type='metainfo')
        return data_samples
