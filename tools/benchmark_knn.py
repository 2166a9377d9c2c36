"""Cost of one KNNMonitorHook evaluation: measured on this CPU, scaled by
FLOPs to ViT-B/16 and to ImageNet-size sets (docs/knn_monitor.md).

Measures (torch threads as given, fp32, eval mode, no grad):

- embedding images/s of the hook's forward (the student without a mask) for
  a small ViT (the demo's 4-block ViT-Ti) and for ViT-B/16, both at 224 px;
  the ViT-B/16 rate predicted from the small one by FLOPs, and the ratio
  measured / predicted;
- the weighted k-NN (``weighted_knn_correct``) of ``--queries`` queries
  against ``--memory`` features of width 768, scaled by ``Q x N`` to the
  50,000 ImageNet val queries against 1,281,167 train images.

Prints a table and, with ``--json``, writes the numbers. Data loading
(JPEG decoding, resizing) is not counted: the hook's loader workers run
beside the model. The arguments are parsed before torch and mvp_mm are
imported (tools/argument_checks.py), so ``--help`` answers at once.
"""
import argparse
import json
import time

from argument_checks import output_file

IMAGENET_MEMORY, IMAGENET_QUERIES = 1_281_167, 50_000
ARCHS = dict(
    small=dict(embed_dims=192, num_layers=4, num_heads=3,
               feedforward_channels=768),
    base=dict(embed_dims=768, num_layers=12, num_heads=12,
              feedforward_channels=3072))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--rounds', type=int, default=3,
                        help='timed batches per model (small: 4x as many)')
    parser.add_argument('--memory', type=int, default=50_000)
    parser.add_argument('--queries', type=int, default=512)
    parser.add_argument('--json', type=output_file,
                        help='write the numbers here')
    return parser.parse_args()


def embedding_rate(arch: dict, batch: int, rounds: int) -> float:
    """Images/s of the student's unmasked forward at 224 px."""
    import torch
    from mmengine.registry import init_default_scope

    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    student = MODELS.build(dict(
        type='FusedBEiTPretrainViT', arch=arch, img_size=224,
        patch_size=16, out_type='raw', use_abs_pos_emb=False,
        use_rel_pos_bias=False, use_shared_rel_pos_bias=True,
        layer_scale_init_value=0.1))
    student.eval()
    images = torch.randn(batch, 3, 224, 224)
    with torch.no_grad():
        student(images, None)  # warm-up
        start = time.perf_counter()
        for _ in range(rounds):
            student(images, None)
    return rounds * batch / (time.perf_counter() - start)


def knn_seconds(memory: int, queries: int, dims: int = 768) -> float:
    """Seconds of one weighted k-NN of ``queries`` against ``memory``."""
    import torch
    import torch.nn.functional as F

    from mvp_mm.evaluation import weighted_knn_correct
    generator = torch.Generator().manual_seed(0)
    bank = F.normalize(torch.randn(memory, dims, generator=generator), dim=1)
    query = F.normalize(torch.randn(queries, dims, generator=generator),
                        dim=1)
    labels = torch.randint(1000, (memory, ), generator=generator)
    query_labels = torch.randint(1000, (queries, ), generator=generator)
    weighted_knn_correct(bank, labels, query[:8], query_labels[:8])  # warm
    start = time.perf_counter()
    weighted_knn_correct(bank, labels, query, query_labels, num_classes=1000)
    return time.perf_counter() - start


def main():
    args = parse_args()  # before the imports: --help at once
    import torch

    import mvp_mm  # noqa: F401  (registers the student)
    from mvp_mm.utils import vit_forward_flops
    torch.set_num_threads(args.threads)
    flops = {name: vit_forward_flops(196, arch['embed_dims'],
                                     arch['num_layers'],
                                     arch['feedforward_channels'], 16)
             for name, arch in ARCHS.items()}
    small = embedding_rate(ARCHS['small'], args.batch, 4 * args.rounds)
    base = embedding_rate(ARCHS['base'], args.batch, args.rounds)
    predicted = small * flops['small'] / flops['base']
    knn = knn_seconds(args.memory, args.queries)
    knn_imagenet = knn * (IMAGENET_MEMORY / args.memory) * (
        IMAGENET_QUERIES / args.queries)
    embed_imagenet = (IMAGENET_MEMORY + IMAGENET_QUERIES) / base
    result = dict(
        threads=args.threads,
        gflops_per_image=dict(small=flops['small'] / 1e9,
                              base=flops['base'] / 1e9),
        small_images_per_s=small,
        base_images_per_s=base,
        base_images_per_s_predicted_by_flops=predicted,
        measured_over_predicted=base / predicted,
        knn_s=knn, knn_memory=args.memory, knn_queries=args.queries,
        imagenet_embed_s=embed_imagenet,
        imagenet_knn_s_per_feature_kind=knn_imagenet,
        imagenet_features_gib_per_kind=IMAGENET_MEMORY * 768 * 4 / 2**30)
    print(f'{args.threads} threads, fp32, 224 px\n'
          f'embedding: small ViT ({flops["small"] / 1e9:.2f} GFLOPs) '
          f'{small:.1f} img/s; ViT-B/16 ({flops["base"] / 1e9:.2f} GFLOPs) '
          f'{base:.2f} img/s measured, {predicted:.2f} predicted by FLOPs '
          f'(ratio {base / predicted:.2f})\n'
          f'k-NN: {args.queries} queries x {args.memory} memory x 768: '
          f'{knn:.2f} s\n'
          f'ImageNet (1.28M memory + 50k queries), ViT-B/16: embedding '
          f'{embed_imagenet / 3600:.0f} h, k-NN {knn_imagenet / 60:.0f} min '
          f'per feature kind (x2: CLS and patch mean), features '
          f'{result["imagenet_features_gib_per_kind"]:.1f} GiB per kind')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)


if __name__ == '__main__':
    main()
