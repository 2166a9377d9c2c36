"""Model FLOPs of an MVP training step, for model FLOPs utilisation (MFU).

MFU counts the FLOPs the model needs, not those an implementation happens to
run (no activation-checkpointing recomputation, no elementwise ops): the
matmuls and the patch-embedding convolution, 2 FLOPs per multiply-add, and a
backward pass costing twice its forward (Korthikanti et al., 2022,
https://arxiv.org/abs/2205.05198; PaLM, https://arxiv.org/abs/2204.02311).
"""
from typing import Dict

from torch import nn


def vit_forward_flops(num_patches: int,
                      embed_dims: int,
                      num_layers: int,
                      feedforward_channels: int,
                      patch_size: int,
                      in_channels: int = 3) -> int:
    """Matmul FLOPs of one ViT forward on one image (CLS + patch tokens).

    Args:
        num_patches (int): M, e.g. 196 for 224 px and 16 px patches.
        embed_dims (int): Width C.
        num_layers (int): Depth.
        feedforward_channels (int): MLP hidden width.
        patch_size (int): Patch side in pixels.
        in_channels (int): Image channels. Defaults to 3.

    Returns:
        int: FLOPs, 2 per multiply-add.
    """
    tokens = num_patches + 1  # [CLS] + M patches
    embed = 2 * num_patches * in_channels * patch_size**2 * embed_dims
    projections = 2 * tokens * embed_dims * (
        4 * embed_dims  # qkv (3C) and the output projection (C)
        + 2 * feedforward_channels)  # MLP in and out
    attention = 2 * 2 * tokens**2 * embed_dims  # q @ k^T and attn @ v
    return embed + num_layers * (projections + attention)


def mvp_step_flops(model: nn.Module, batch_size: int) -> Dict[str, int]:
    """Model FLOPs of one :class:`~mvp_mm.models.MVP` training step.

    The student (an mmpretrain ViT, e.g. ``FusedBEiTPretrainViT``) and the
    head run forward and backward (3x forward); the frozen CLIP teacher
    (:class:`~mvp_mm.models.CLIPTargetGenerator`) forward only, including
    its projection of every token into the multimodal space when its
    ``features`` are the projected ones.

    Args:
        model (nn.Module): An ``MVP`` model.
        batch_size (int): Images per step.

    Returns:
        Dict[str, int]: ``student`` (fwd + bwd, with the head), ``teacher``
        (fwd) and ``total`` FLOPs per step.
    """
    student, teacher = model.backbone, model.target_generator
    if not hasattr(student, 'arch_settings') or not hasattr(
            teacher, 'teacher') or not hasattr(teacher.teacher, 'transformer'):
        raise TypeError(
            'mvp_step_flops knows mmpretrain ViT students (arch_settings) '
            'and CLIPTargetGenerator teachers; got '
            f'{type(student).__name__} and {type(teacher).__name__}.')
    num_patches = student.patch_resolution[0] * student.patch_resolution[1]
    tokens = num_patches + 1  # [CLS] + M patches
    projection = student.patch_embed.projection
    student_fwd = vit_forward_flops(
        num_patches, student.embed_dims, student.num_layers,
        student.arch_settings['feedforward_channels'],
        projection.kernel_size[0], projection.in_channels)
    head_fwd = 2 * tokens * student.embed_dims * teacher.out_dims
    tower = teacher.teacher
    teacher_fwd = vit_forward_flops(
        num_patches, teacher.embed_dims, tower.transformer.layers,
        tower.transformer.resblocks[0].mlp.c_fc.out_features,
        teacher.patch_size, tower.conv1.in_channels)
    if teacher.features == 'projected':  # ln_post(x) @ proj, every token
        teacher_fwd += 2 * tokens * teacher.embed_dims * teacher.out_dims
    flops = dict(
        student=3 * batch_size * (student_fwd + head_fwd),
        teacher=batch_size * teacher_fwd)
    flops['total'] = flops['student'] + flops['teacher']
    return flops
