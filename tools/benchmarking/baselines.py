"""The stock-parts baseline: MVP's step assembled from mmpretrain's parts,
given our model's weights and batch, and the check that both compute the
same loss before their speeds are compared."""
from typing import Dict

import open_clip
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from torch import nn

import mvp_mm  # noqa: F401  (registers MVP's modules)
from mmpretrain.models.losses import CosineSimilarityLoss
from mmpretrain.models.selfsup.milan import CLIPGenerator
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from mvp_mm.datasets.transforms import BlockwiseMaskGenerator
from mvp_mm.utils.open_clip_logs import open_clip_logs_captured

from .masks import mask_settings

LOSS_TOLERANCE = 1e-4


class StockMVPStep(nn.Module):
    """MVP's step assembled from stock mmpretrain parts, as a user would.

    - student: mmpretrain's ``BEiTPretrainViT`` (plain ``BEiTAttention``);
    - teacher: mmpretrain's ``CLIPGenerator`` (MILAN's target generator):
      mmpretrain's own CLIP (``build_clip_model``) loaded from the checkpoint
      file, a registered submodule (so it follows ``model.train()`` and its
      parameters reach the optimizer, where AdamW skips them: no grads);
      it returns ``ln_post(x) @ proj`` for every token, as Eq. 7 needs;
    - the student's ImageNet-normalised input is mapped to CLIP's
      normalisation with constants computed once (buffers);
    - head: one ``nn.Linear``; loss: ``CosineSimilarityLoss`` (minus the mean
      cosine over all tokens = Eq. 9 with ``patches='all'``).

    Args:
        backbone (dict): The student config (its ``type`` is replaced).
        clip_checkpoint (str): CLIP state dict file.
        out_channels (int): CLIP's embedding dim.
        mean, std (tuple): The student input's normalisation (0-255).
        clip_mean, clip_std (tuple): CLIP's (0-255).
    """

    def __init__(self, backbone: dict, clip_checkpoint: str,
                 out_channels: int, mean: tuple, std: tuple,
                 clip_mean: tuple, clip_std: tuple) -> None:
        super().__init__()
        backbone = dict(backbone, type='BEiTPretrainViT')
        backbone.pop('with_cp', None)
        self.backbone = MODELS.build(backbone)
        self.head = nn.Linear(self.backbone.embed_dims, out_channels)
        self.target_generator = CLIPGenerator(clip_checkpoint)
        self.loss_module = CosineSimilarityLoss()
        mean, std = torch.tensor(mean), torch.tensor(std)
        clip_mean, clip_std = torch.tensor(clip_mean), torch.tensor(clip_std)
        self.register_buffer('scale', (std / clip_std).view(1, 3, 1, 1))
        self.register_buffer('shift',
                             ((mean - clip_mean) / clip_std).view(1, 3, 1, 1))

    def teacher(self, imgs: torch.Tensor) -> torch.Tensor:
        """CLIP features of every token ``[B, 1 + M, D]``."""
        return self.target_generator(imgs * self.scale + self.shift)[0]

    def loss(self, imgs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        latent = self.backbone(imgs, mask)[0]  # [B, 1 + M, C]
        return self.loss_module(self.head(latent), self.teacher(imgs))


def write_random_clip(model_name: str, overrides: dict, path: str) -> None:
    """A seeded random open_clip CLIP's state dict (OpenAI key layout)."""
    with torch.random.fork_rng(devices=[]), open_clip_logs_captured():
        torch.manual_seed(0)
        model = open_clip.create_model(model_name, pretrained=None,
                                       **overrides)
    torch.save(model.state_dict(), path)


def build_models(cfg: Config, clip_checkpoint: str, device: str):
    """Our MVP (from the config) and the stock assembly, same weights."""
    model_cfg = cfg.model.copy()
    model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    model_cfg.target_generator.pretrained = clip_checkpoint
    mvp = MODELS.build(model_cfg)
    mvp.init_weights()
    teacher = mvp.target_generator
    preprocessor = mvp.data_preprocessor
    stock = StockMVPStep(
        cfg.model.backbone, clip_checkpoint, teacher.out_dims,
        tuple(preprocessor.mean.flatten().tolist()),
        tuple(preprocessor.std.flatten().tolist()), teacher.teacher_mean,
        teacher.teacher_std)
    # Same keys: our student's checkpoint loads into the stock one, strictly.
    stock.backbone.load_state_dict(mvp.backbone.state_dict())
    stock.head.load_state_dict(mvp.head.fc.state_dict())
    return mvp.to(device).train(), stock.to(device).train()


def build_optimizers(cfg: Config, mvp: nn.Module, stock: nn.Module,
                     device: str):
    """The config's optim wrapper for both; the stock one without
    ``fused`` (mmpretrain's default AdamW)."""
    wrapper = cfg.optim_wrapper.copy()
    if device == 'cpu':  # as tools/train.py does on a machine with no GPU
        wrapper.type = 'OptimWrapper'
        for key in ('loss_scale', 'dtype', 'use_fsdp'):
            wrapper.pop(key, None)
    theirs = wrapper.copy()
    theirs.optimizer = dict(theirs.optimizer)
    theirs.optimizer.pop('fused', None)
    return build_optim_wrapper(mvp, wrapper), build_optim_wrapper(
        stock, theirs)


def make_batch(cfg: Config, batch_size: int, image_size: int, grid: int,
               device: str):
    """Normalised images and BEiT block masks, on the device, once."""
    generator = BlockwiseMaskGenerator(
        input_size=grid, **mask_settings(cfg))
    masks = torch.stack([
        torch.from_numpy(generator.transform({})['mask'])
        for _ in range(batch_size)
    ]).to(device)  # [B, h, w], 1 = masked
    imgs = torch.randn(batch_size, 3, image_size, image_size, device=device)
    samples = [DataSample().set_mask(m) for m in masks]
    return imgs, masks, samples


def check_equal_loss(mvp, stock, imgs, masks, samples) -> Dict[str, float]:
    """Same weights and batch -> same loss.

    Stochastic depth is off for the check (eval mode): ours drops each
    residual branch once, as official BEiT does, while mmpretrain's layer
    drops its FFN branch twice, so their random draws differ.
    """
    bf16 = mvp.target_generator.bf16_on_gpu
    mvp.target_generator.bf16_on_gpu = False  # compare in float32
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    mvp.eval()
    stock.eval()
    try:
        with torch.no_grad():
            ours = mvp.loss(imgs, samples)['loss'].item()
            theirs = stock.loss(imgs, masks).item()
    finally:
        mvp.train()
        stock.train()
        mvp.target_generator.bf16_on_gpu = bf16
        torch.backends.cuda.matmul.allow_tf32 = tf32
    if abs(ours - theirs) > LOSS_TOLERANCE:
        raise RuntimeError(
            f'The MVP step and the stock-parts step disagree at init: loss '
            f'{ours:.6f} vs {theirs:.6f} (tolerance {LOSS_TOLERANCE}). They '
            'do not compute the same thing, so their speeds cannot be '
            'compared; check the config (student, teacher, loss).')
    return dict(mvp=ours, stock=theirs, abs_diff=abs(ours - theirs))
