"""Install ``mvp_mm``.

``mmcv`` is deliberately absent from ``install_requires``: a user who already
has the full, compiled ``mmcv`` must keep it, and ``mmcv-lite`` (same import
name) would overwrite it. ``tools/install.sh`` picks ``mmcv-lite`` only when no
``mmcv`` distribution is installed.
"""
from setuptools import find_packages, setup

setup(
    name='mvp_mm',
    version='0.1.0',
    description='MVP: Multimodality-guided Visual Pre-training, as an '
    'OpenMMLab (mmpretrain / mmsegmentation) plugin',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    url='https://arxiv.org/abs/2203.05175',
    packages=find_packages(include=['mvp_mm', 'mvp_mm.*']),
    python_requires='>=3.8',
    install_requires=[
        # 2.1: SDPA's scale argument (fused attention), uint8 antialiased
        # bicubic resize (the fast data pipeline)
        'torch>=2.1',
        'torchvision',
        'mmengine>=0.10.7,<1.0',
        'mmpretrain>=1.2.0,<1.3',
        'mmsegmentation>=1.2.2,<1.3',
        'open_clip_torch>=3.0,<4',
        'timm>=1.0',
        'safetensors',
        # Real photographs (skimage.data, inside the wheel) for the demo,
        # the analysis examples and the data-pipeline benchmark.
        'scikit-image',
        # Tar shards in the WebDataset layout read by index (ShardDataset,
        # tools/make_shards.py): webdataset's indexed reader, wids (its own
        # distribution since webdataset 1.0), for the tar member index over
        # an mmap, the shard-list JSON and the download cache of remote
        # shards. <0.2: ShardDataset reads IndexedTarSamples' member table.
        'wids>=0.1.11,<0.2',
        # mmengine 0.10.7 resolves `mmpretrain::` / `mmseg::` config bases
        # through pkg_resources, which setuptools >= 81 no longer ships.
        'setuptools<81',
    ],
    extras_require={
        'lite': ['mmcv-lite>=2.0.0,<2.2.0'],
        'tests': ['pytest>=7'],
    },
)
