"""An air-gapped GPU node's install: tools/make_wheelhouse.sh on a machine with
PyPI, then ``bash tools/install.sh --wheelhouse DIR`` with the index off, on
top of the node's own torch.

The node is played by an empty virtual environment that sees this
environment's torch install (torch, torchvision and their requirements)
through a ``.pth`` file and nothing else. The wheelhouse is built for the
running Python (no torch download: it leaves torch out). It needs PyPI and a
few minutes, so the suite skips it; ``bash .ci/run`` runs it as its own step
(MVP_MM_WHEELHOUSE_TEST=1).
"""
import glob
import importlib.metadata
import os
import os.path as osp
import re
import subprocess
import sys
import sysconfig

import pytest
from packaging.requirements import Requirement
from tiny import REPO

pytestmark = pytest.mark.skipif(
    os.environ.get('MVP_MM_WHEELHOUSE_TEST') != '1',
    reason='needs PyPI and minutes: MVP_MM_WHEELHOUSE_TEST=1 (bash .ci/run)')

# What tools/make_wheelhouse.sh leaves to the node's torch.
LEFT_OUT = re.compile(r'(torch|torchvision|triton|nvidia-.*|cuda-.*)')
# Build a config's model in the "node": the demo config, shrunk.
BUILD_A_MODEL = '''
import mmengine, torch, mvp_mm
from mmengine.config import Config
from mmpretrain.registry import MODELS
cfg = Config.fromfile({config!r})
teacher = cfg.model.target_generator
teacher.update(pretrained=None, fallback_to_random=False, model_overrides=dict(
    embed_dim=16, vision_cfg=dict(image_size=224, layers=1, width=32,
    patch_size=16, head_width=16), text_cfg=dict(context_length=8,
    vocab_size=100, width=16, heads=2, layers=1)))
cfg.model.backbone.arch = dict(embed_dims=32, num_layers=1, num_heads=2,
                               feedforward_channels=64)
model = MODELS.build(cfg.model)
print('built', type(model).__name__)
print('mmengine', mmengine.__file__)
print('torch', torch.__file__)
print('mvp_mm', mvp_mm.__file__)
'''


def _canonical(name: str) -> str:
    return re.sub(r'[-_.]+', '-', name).lower()


def _torch_install(names=('torch', 'torchvision')) -> set:
    """The distributions a node's torch install brings: torch, torchvision
    and their requirements, transitively (markers evaluated, with the
    extras asked for, e.g. ``cuda-toolkit[cudart]``)."""
    found, todo = set(), [(name, frozenset()) for name in names]
    while todo:
        name, extras = todo.pop()
        if (_canonical(name), extras) in found:
            continue
        found.add((_canonical(name), extras))
        for line in importlib.metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or any(
                    requirement.marker.evaluate(dict(extra=extra))
                    for extra in {''} | extras):
                todo.append((requirement.name,
                             frozenset(requirement.extras)))
    return {name for name, _ in found}


def _torch_only_folder(folder: str) -> None:
    """Links to this environment's torch install and nothing else."""
    os.makedirs(folder)
    torch_install = _torch_install()
    for dist in importlib.metadata.distributions():
        if _canonical(dist.metadata['Name']) not in torch_install:
            continue
        for path in dist.files or []:
            if path.parts[0] == '..':  # scripts outside site-packages
                continue
            link = osp.join(folder, path.parts[0])
            source = str(dist.locate_file(path.parts[0]))
            if not osp.lexists(link) and osp.exists(source):
                os.symlink(source, link)


def _offline_env(venv: str) -> dict:
    """The venv first on PATH, and no index nor extra wheel folder from
    this machine's pip configuration: only the wheelhouse."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(('PIP_', 'PYTHON', 'VIRTUAL_ENV'))}
    env.update(PATH=osp.join(venv, 'bin') + os.pathsep + env['PATH'],
               PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK='1',
               HF_HUB_OFFLINE='1')
    return env


def _run(args, **kwargs) -> subprocess.CompletedProcess:
    run = subprocess.run(args, capture_output=True, text=True, timeout=1500,
                         **kwargs)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    return run


def test_wheelhouse_installs_offline_over_the_nodes_torch(tmp_path):
    wheelhouse = str(tmp_path / 'wheelhouse')
    here = dict(os.environ, PATH=osp.dirname(sys.executable) + os.pathsep +
                os.environ['PATH'])
    _run(['bash', osp.join(REPO, 'tools', 'make_wheelhouse.sh'), wheelhouse],
         env=here)
    names = {_canonical(osp.basename(p).split('-')[0])
             for p in glob.glob(osp.join(wheelhouse, '*.whl'))}
    assert not {n for n in names if LEFT_OUT.fullmatch(n)}  # no torch
    assert {'mmengine', 'mmpretrain', 'mmsegmentation', 'mmcv-lite',
            'open-clip-torch', 'timm', 'setuptools', 'pytest'} <= names

    venv = str(tmp_path / 'node')
    _run([sys.executable, '-m', 'venv', venv])
    site = sysconfig.get_path('purelib', vars=dict(base=venv, platbase=venv))
    _torch_only_folder(str(tmp_path / 'torch_only'))
    with open(osp.join(site, 'node_torch.pth'), 'w') as f:
        f.write(str(tmp_path / 'torch_only') + '\n')
    env = _offline_env(venv)
    _run(['bash', osp.join(REPO, 'tools', 'install.sh'), '--wheelhouse',
          wheelhouse, '--tests'], env=env, cwd=str(tmp_path))

    python = osp.join(venv, 'bin', 'python')
    demo = osp.join(REPO, 'configs', 'pretrain', 'mvp_vit-tiny-p16_6e_demo.py')
    out = _run([python, '-c', BUILD_A_MODEL.format(config=demo)], env=env,
               cwd=str(tmp_path)).stdout
    paths = dict(line.split(' ', 1) for line in out.splitlines())
    assert paths['built'] == 'MVP'
    assert paths['mmengine'].startswith(venv)  # from the wheelhouse
    assert paths['torch'].startswith(str(tmp_path / 'torch_only'))
    assert paths['mvp_mm'].startswith(REPO)  # the editable install
