"""CLS-query attention of a ViT's last block (the paper's Figure 3)."""
import textwrap
from typing import Callable, List, Sequence, Tuple

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import nn

from mmpretrain.models.utils import BEiTAttention


def _attention_probabilities(attention: nn.Module, args: tuple,
                             kwargs: dict) -> torch.Tensor:
    """Re-run ``attention`` on its recorded input, returning its softmax.

    Fused kernels (``F.scaled_dot_product_attention``) never materialise the
    attention matrix, so the block is re-run on the same input through an
    unfused path of its own library: ``nn.MultiheadAttention`` with
    ``need_weights=True``; mmpretrain's ``BEiTAttention`` (or a subclass,
    e.g. a fused one) through ``BEiTAttention.forward``; timm's attention
    with ``fused_attn`` off. The last two apply ``attn_drop`` to the softmax,
    which a forward hook reads.

    Returns:
        torch.Tensor: ``[B, heads, N, N]``, rows sum to 1.
    """
    if isinstance(attention, nn.MultiheadAttention):
        kwargs = dict(kwargs, need_weights=True, average_attn_weights=False)
        return attention(*args, **kwargs)[1]
    dropout = getattr(attention, 'attn_drop', None)
    if not isinstance(dropout, nn.Dropout):
        raise TypeError(
            f'Cannot read attention weights from {type(attention).__name__}: '
            'supported are nn.MultiheadAttention (open_clip), mmpretrain '
            "BEiTAttention (MVP's student) and timm's Attention.")
    forward = BEiTAttention.forward if isinstance(attention, BEiTAttention) \
        else type(attention).forward
    captured = []
    handle = dropout.register_forward_hook(
        lambda module, inputs, output: captured.append(inputs[0]))
    fused = getattr(attention, 'fused_attn', None)
    try:
        if fused is not None:
            attention.fused_attn = False
        forward(attention, *args, **kwargs)
    finally:
        handle.remove()
        if fused is not None:
            attention.fused_attn = fused
    if len(captured) != 1:
        raise RuntimeError(
            f'{type(attention).__name__} did not pass its attention matrix '
            'through attn_drop exactly once; cannot read its weights.')
    return captured[0]


@torch.no_grad()
def cls_attention_maps(forward: Callable[[torch.Tensor], object],
                       attention: nn.Module,
                       images: torch.Tensor,
                       grid: Tuple[int, int],
                       num_prefix_tokens: int = 1) -> torch.Tensor:
    """Attention of the CLS query over the patches, averaged over heads.

    As in `MVP <https://arxiv.org/abs/2203.05175>`_ Figure 3: "averaging
    their attention maps of all heads ... with CLS token as the query".

    Args:
        forward (Callable): Runs the model on ``images``.
        attention (nn.Module): The attention module to read (the last
            block's); its input is recorded with a forward hook.
        images (torch.Tensor): ``[B, 3, H, W]``, normalised for the model.
        grid (Tuple[int, int]): The patch grid ``(h, w)``.
        num_prefix_tokens (int): CLS plus any register tokens, which come
            before the patches. Defaults to 1.

    Returns:
        torch.Tensor: ``[B, h, w]``, each map sums to at most 1.
    """
    recorded = []
    handle = attention.register_forward_hook(
        lambda module, args, kwargs, output: recorded.append((args, kwargs)),
        with_kwargs=True)
    try:
        forward(images)
    finally:
        handle.remove()
    if not recorded:
        raise RuntimeError('The attention module was not called by forward.')
    args, kwargs = recorded[-1]
    probs = _attention_probabilities(attention, args, kwargs)  # [B, h, N, N]
    cls_row = probs[:, :, 0, num_prefix_tokens:].mean(1)  # [B, M]
    if cls_row.shape[1] != grid[0] * grid[1]:
        raise ValueError(f'{cls_row.shape[1]} patch tokens do not fill the '
                         f'{grid} grid; check num_prefix_tokens.')
    return cls_row.reshape(-1, *grid).float()


def overlay_heatmap(image: np.ndarray,
                    heat: torch.Tensor,
                    alpha: float = 0.5,
                    colormap: str = 'jet') -> np.ndarray:
    """Blend a colour-mapped attention map over an image.

    Args:
        image (np.ndarray): ``[H, W, 3]`` uint8 RGB.
        heat (torch.Tensor): ``[h, w]`` attention map.
        alpha (float): Weight of the heat map. Defaults to 0.5.
        colormap (str): A matplotlib colormap. Defaults to ``'jet'``.

    Returns:
        np.ndarray: ``[H, W, 3]`` uint8 RGB.
    """
    height, width = image.shape[:2]
    heat = F.interpolate(heat[None, None].float(), size=(height, width),
                         mode='bilinear', align_corners=False)[0, 0]
    heat = (heat - heat.min()) / (heat.max() - heat.min()).clamp(min=1e-12)
    colours = matplotlib.colormaps[colormap](heat.numpy())[..., :3] * 255
    blended = (1 - alpha) * image.astype(np.float32) + alpha * colours
    return blended.round().clip(0, 255).astype(np.uint8)


def figure_row(panels: Sequence[np.ndarray],
               titles: Sequence[str],
               size: int = 224,
               title_height: int = 32) -> Image.Image:
    """Panels side by side, each resized to ``size``, titled above (up to two
    lines, in Pillow's default font at 12 px: at its 10 px default, glyphs
    and spaces are dropped).

    Args:
        panels (Sequence[np.ndarray]): ``[H, W, 3]`` uint8 RGB images.
        titles (Sequence[str]): One per panel.
        size (int): Side of each panel. Defaults to 224.
        title_height (int): Height of the title strip. Defaults to 32.

    Returns:
        Image.Image: ``(len(panels) * size) x (size + title_height)`` RGB.
    """
    canvas = Image.new('RGB', (len(panels) * size, size + title_height),
                       'white')
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=12)
    for index, (panel, title) in enumerate(zip(panels, titles)):
        canvas.paste(
            Image.fromarray(panel).resize((size, size), Image.BICUBIC),
            (index * size, title_height))
        lines = textwrap.wrap(title, width=max(1, size // 7))[:2]
        draw.multiline_text((index * size + 2, 1), '\n'.join(lines),
                            fill='black', font=font, spacing=2)
    return canvas


#: What the heat maps' colours mean, under every figure.
COLOUR_MEANING = ('colour: attention of the CLS token to each patch, last '
                  'block, mean over heads; each map from its least to its '
                  'most attended patch')


def _text_lines(text: str, width: int, font) -> List[str]:
    """``text`` wrapped at spaces to lines at most ``width`` pixels wide in
    ``font``."""
    lines = []
    for word in text.split():
        if lines and font.getlength(f'{lines[-1]} {word}') <= width:
            lines[-1] += ' ' + word
        else:
            lines.append(word)
    return lines


def explained_figure(figure: Image.Image,
                     caption: str,
                     colormap: str = 'jet') -> Image.Image:
    """``figure`` with a colour bar, what the colours mean, and a caption
    (what was drawn: checkpoint, teacher weights) below it.

    Args:
        figure (Image.Image): Rows of :func:`figure_row` panels.
        caption (str): One line; wrapped where the figure is narrower.
        colormap (str): The heat maps' matplotlib colormap. Defaults to
            ``'jet'`` (:func:`overlay_heatmap`'s).

    Returns:
        Image.Image: The same width, taller.
    """
    width, line = figure.width, 16
    font = ImageFont.load_default(size=12)
    meaning = _text_lines(COLOUR_MEANING, width - 4, font)
    captions = _text_lines(caption, width - 4, font)
    bar_top = figure.height + 4
    text_top = bar_top + line + 2
    canvas = Image.new(
        'RGB', (width, text_top + line * (len(meaning) + len(captions)) + 4),
        'white')
    canvas.paste(figure, (0, 0))
    draw = ImageDraw.Draw(canvas)
    low_width, high_width = 30, 32  # 'low ', 'high' at 12 px
    bar = np.linspace(0, 1, max(1, width - low_width - high_width - 8))
    colours = (matplotlib.colormaps[colormap](bar)[:, :3] * 255).round()
    strip = np.repeat(colours[None].astype(np.uint8), line - 4, axis=0)
    canvas.paste(Image.fromarray(strip), (low_width + 2, bar_top + 2))
    draw.text((2, bar_top + 1), 'low', fill='black', font=font)
    draw.text((width - high_width, bar_top + 1), 'high', fill='black',
              font=font)
    for index, text in enumerate(meaning + captions):
        draw.text((2, text_top + index * line), text,
                  fill='dimgray' if index < len(meaning) else 'black',
                  font=font)
    return canvas


def attention_panels(subjects: Sequence,
                     image_path: str,
                     alpha: float = 0.5) -> Tuple[List[np.ndarray], List[str]]:
    """The input and each model's last-block CLS attention on it.

    Args:
        subjects (Sequence[ViTSubject]): The models (see
            :func:`~mvp_mm.analysis.load_vit_subject`); the first one's
            crop is the input panel.
        image_path (str): An image file.
        alpha (float): Opacity of the heat maps. Defaults to 0.5.

    Returns:
        Tuple[List[np.ndarray], List[str]]: ``1 + len(subjects)`` panels
        (``[S, S, 3]`` uint8 RGB: the crop, then one overlay per model) and
        their titles (``'input'``, then each model's name), for
        :func:`figure_row`.
    """
    panels, titles = [], ['input']
    for subject in subjects:
        crop, x = subject.prepare(image_path)
        heat = cls_attention_maps(subject.forward, subject.attention, x,
                                  subject.grid, subject.num_prefix_tokens)[0]
        if not panels:
            panels.append(crop)
        panels.append(overlay_heatmap(crop, heat, alpha))
        titles.append(subject.name)
    return panels, titles
