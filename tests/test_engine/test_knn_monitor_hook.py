"""KNNMonitorHook: weighted k-NN accuracy of the student logged while
training, the same on 2 gloo processes as on one."""
import glob
import json
import os
import os.path as osp
import socket
import subprocess
import sys
import uuid
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from mvp_mm.engine import KNNMonitorHook
from mvp_mm.evaluation import weighted_knn_accuracy
from mvp_mm.utils import make_imagenet_folder
from tiny import IMG, REPO, tiny_pretrain_cfg

KEYS = ('knn/cls_top1', 'knn/cls_top5', 'knn/patch_mean_top1',
        'knn/patch_mean_top5')


def knn_sets(root: str) -> dict:
    """A labelled memory set (7 classes x 3) and query set (7 x 1, other
    images) in ImageNet's folder layout: uneven shards on 2 ranks."""
    make_imagenet_folder(root, 7, 3, 80, split='train', seed=3)
    make_imagenet_folder(root, 7, 1, 80, split='val', seed=4)
    return dict(memory=dict(data_root=root, data_prefix='train'),
                query=dict(data_root=root, data_prefix='val'),
                batch_size=4, num_workers=0)


def train(tmp_path, name, hook):
    cfg = tiny_pretrain_cfg(str(tmp_path / 'in'), str(tmp_path / name),
                            max_iters=4, batch_size=2)
    cfg.experiment_name = f'{name}_{uuid.uuid4().hex}'  # a fresh MessageHub
    # Without per-iteration re-seeding, training's draws depend on the RNG
    # states that the hook must leave as it found them.
    cfg.custom_hooks = [h for h in cfg.custom_hooks
                        if h['type'] != 'IterationSeedHook']
    if hook:
        cfg.custom_hooks.append(dict(type='KNNMonitorHook', by_epoch=False,
                                     interval=2, **hook))
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


def features_by_hand(model, folder):
    """CLS and patch-mean features of each image of ``folder``, one image at
    a time, straight from the student, and the labels."""
    from mmpretrain.registry import DATASETS
    dataset = DATASETS.build(dict(
        type='CustomDataset', data_root=osp.dirname(folder),
        data_prefix=osp.basename(folder),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='ResizeEdge', scale=round(IMG * 256 / 224),
                       edge='short', backend='pillow',
                       interpolation='bicubic'),
                  dict(type='CenterCrop', crop_size=IMG),
                  dict(type='PackInputs')]))
    cls, mean, labels = [], [], []
    with torch.no_grad():
        for item in dataset:
            imgs = model.data_preprocessor(
                dict(inputs=item['inputs'][None],
                     data_samples=[item['data_samples']]), False)['inputs']
            tokens = model.backbone(imgs, None)[0]
            cls.append(F.normalize(tokens[:, 0], dim=-1))
            mean.append(F.normalize(tokens[:, 1:].mean(1), dim=-1))
            labels.append(item['data_samples'].gt_label)
    return torch.cat(cls), torch.cat(mean), torch.cat(labels)


def test_hook_logs_knn_accuracy_and_leaves_training_alone(tmp_path):
    make_imagenet_folder(str(tmp_path / 'in'), 2, 4, 80, split='train')
    sets = knn_sets(str(tmp_path / 'knn'))
    plain = train(tmp_path, 'plain', hook=None)
    hooked = train(tmp_path, 'hooked', hook=sets)

    # Same seed, same losses: the hook draws nothing from training's RNGs.
    losses = [r.message_hub.get_scalar('train/loss').data[0]
              for r in (plain, hooked)]
    assert len(losses[0]) == 4 and (losses[0] == losses[1]).all()

    scalars = glob.glob(str(tmp_path / 'hooked' / '*' / 'vis_data' /
                            'scalars.json'))
    with open(scalars[0]) as f:
        logged = [json.loads(line) for line in f]
    evaluations = [e for e in logged if 'knn/cls_top1' in e]
    assert [e['step'] for e in evaluations] == [2, 4]
    for key in KEYS:
        assert 0 <= evaluations[-1][key] <= 100
        assert hooked.message_hub.get_scalar(key).current() == \
            evaluations[-1][key]
    log = open(hooked.logger.log_file).read()
    assert 'k-NN accuracy (%) at iter 4 (k=20, T=0.07, 21 memory / 7 ' \
        'query images' in log

    # The numbers: DINO's k-NN of the student's CLS / mean patch token.
    model = hooked.model.eval()
    memory = features_by_hand(model, str(tmp_path / 'knn' / 'train'))
    query = features_by_hand(model, str(tmp_path / 'knn' / 'val'))
    hook = next(h for h in hooked.hooks if isinstance(h, KNNMonitorHook))
    model.train()
    scores = hook.evaluate(model)
    assert model.training  # mode restored
    for kind, column in (('cls', 0), ('patch_mean', 1)):
        expected = weighted_knn_accuracy(memory[column], memory[2],
                                         query[column], query[2])
        assert scores[f'knn/{kind}_top1'] == expected['top1']
        assert scores[f'knn/{kind}_top5'] == expected['top5']
    assert scores == {key: evaluations[-1][key] for key in KEYS}


def test_hook_rejects_bad_arguments_and_unlabelled_images(tmp_path):
    with pytest.raises(ValueError, match='interval'):
        KNNMonitorHook(memory=dict(), query=dict(), interval=0)
    with pytest.raises(TypeError, match='memory must be a dict'):
        KNNMonitorHook(memory='data/imagenet', query=dict())
    root = str(tmp_path / 'knn')
    sets = knn_sets(root)
    sets['query'] = dict(sets['query'], with_label=False)
    hook = KNNMonitorHook(**sets)
    model = tiny_model()
    hook.before_train(SimpleNamespace(
        model=model, build_dataloader=Runner.build_dataloader))
    with pytest.raises(ValueError, match='needs labelled images'):
        hook.evaluate(model)


def tiny_model():
    """The tiny MVP model of tests/tiny.py, seeded (and mmpretrain's
    registry scope, as in a runner)."""
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    cfg = tiny_pretrain_cfg('unused', 'unused')
    torch.manual_seed(0)
    model = MODELS.build(dict(cfg.model,
                              data_preprocessor=cfg.data_preprocessor))
    model.init_weights()
    return model


# One rank of 2: the hook on the tiny model with the test's weights; writes
# its scores, the gathered memory features and how many images it embedded.
# gloo on CPU with or without a GPU (tools/dist_train.sh's launch layer is
# tested in tests/test_distributed.py).
_RANK = """
import json, sys, torch
import torch.distributed as dist
from types import SimpleNamespace
from mmengine.dist import get_rank
from mmengine.runner import Runner
dist.init_process_group('gloo')
from mvp_mm.engine import KNNMonitorHook
from test_knn_monitor_hook import knn_sets, tiny_model
out, root = sys.argv[1], sys.argv[2]
model = tiny_model()
model.load_state_dict(torch.load(out + '/weights.pth'))
hook = KNNMonitorHook(**knn_sets(root))
hook.before_train(SimpleNamespace(
    model=model, build_dataloader=Runner.build_dataloader))
embedded = []
extract = model.extract_feat
model.extract_feat = lambda imgs: embedded.append(len(imgs)) or extract(imgs)
scores = hook.evaluate(model)
memory = hook._embed(model.eval(), hook.loaders['memory'])
rank = get_rank()
torch.save(memory, f'{out}/memory_rank{rank}.pth')
with open(f'{out}/rank{rank}.json', 'w') as f:
    json.dump(dict(scores=scores, embedded=sum(embedded)), f)
dist.barrier()
dist.destroy_process_group()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_gloo_processes_give_the_accuracies_of_one(tmp_path):
    root = str(tmp_path / 'knn')
    sets = knn_sets(root)
    model = tiny_model()
    torch.save(model.state_dict(), str(tmp_path / 'weights.pth'))
    hook = KNNMonitorHook(**sets)
    hook.before_train(SimpleNamespace(
        model=model, build_dataloader=Runner.build_dataloader))
    single = hook.evaluate(model)
    single_memory = hook._embed(model.eval(), hook.loaders['memory'])

    port = str(_free_port())
    ranks = [
        subprocess.Popen(
            [sys.executable, '-c', _RANK, str(tmp_path), root], cwd=REPO,
            env=dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank),
                     WORLD_SIZE='2', MASTER_ADDR='127.0.0.1',
                     MASTER_PORT=port, OMP_NUM_THREADS='1',
                     PYTHONPATH=os.pathsep.join(
                         [REPO, osp.join(REPO, 'tests', 'test_engine'),
                          osp.join(REPO, 'tests')])),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for rank in (0, 1)
    ]
    for rank in ranks:
        out = rank.communicate(timeout=300)[0]
        assert rank.returncode == 0, out[-3000:]
    results = [json.load(open(tmp_path / f'rank{r}.json')) for r in (0, 1)]
    # Every image embedded once over both ranks, twice per evaluation
    # (memory and query) plus the memory again for the features below.
    assert [r['embedded'] for r in results] == [11 + 4 + 11, 10 + 3 + 10]
    for result in results:
        assert result['scores'] == single
    for rank in (0, 1):
        memory = torch.load(tmp_path / f'memory_rank{rank}.pth')
        assert torch.equal(memory['label'], single_memory['label'])
        for kind in ('cls', 'patch_mean'):
            torch.testing.assert_close(memory[kind], single_memory[kind])


def test_the_paper_configs_one_line_turns_it_on(tmp_path):
    """Off in the paper config; the entry its comment gives, in a config
    deriving from it, builds a hook on ImageNet-style annotation files."""
    from mmengine.config import Config

    from tiny import PRETRAIN_CFG
    paper = Config.fromfile(PRETRAIN_CFG)
    assert 'KNNMonitorHook' not in [h.type for h in paper.custom_hooks]
    with open(PRETRAIN_CFG) as f:
        lines = f.read().splitlines()
    start = lines.index("# custom_hooks = _base_.custom_hooks + [dict("
                        "type='KNNMonitorHook',")
    entry = []
    for line in lines[start:]:
        entry.append(line[2:])
        if line.endswith(')]'):
            break
    derived = tmp_path / 'mvp_with_knn.py'
    derived.write_text(f'_base_ = {PRETRAIN_CFG!r}\n' + '\n'.join(entry))
    cfg = Config.fromfile(str(derived))
    assert cfg.custom_hooks[:-1] == paper.custom_hooks
    hook = cfg.custom_hooks[-1]
    assert hook.memory.ann_file == 'meta/train_knn.txt'

    # ImageNet's layout: meta/*.txt lines "path label", val/ flat.
    root = tmp_path / 'imagenet'
    make_imagenet_folder(str(root), 7, 3, 40, split='train', seed=3)
    make_imagenet_folder(str(root), 7, 1, 40, split='val', seed=4)
    os.makedirs(root / 'meta')
    train = sorted(glob.glob(str(root / 'train' / '*' / '*')))
    with open(root / 'meta' / 'train_knn.txt', 'w') as f:
        for path in train:
            f.write(f'{osp.relpath(path, root / "train")} '
                    f'{int(osp.basename(osp.dirname(path))[1:])}\n')
    with open(root / 'meta' / 'val.txt', 'w') as f:
        for path in sorted(glob.glob(str(root / 'val' / '*' / '*'))):
            os.replace(path, root / 'val' / osp.basename(path))
            f.write(f'{osp.basename(path)} '
                    f'{int(osp.basename(osp.dirname(path))[1:])}\n')
    for name in ('memory', 'query'):
        hook[name].data_root = str(root)
    hook = KNNMonitorHook(**{k: v for k, v in hook.items() if k != 'type'},
                          num_workers=0)
    model = tiny_model()
    hook.before_train(SimpleNamespace(
        model=model, build_dataloader=Runner.build_dataloader))
    assert [len(hook.loaders[n].dataset) for n in ('memory', 'query')] == \
        [21, 7]
    scores = hook.evaluate(model)
    assert set(scores) == set(KEYS)
