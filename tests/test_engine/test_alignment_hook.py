"""MVPAlignmentHook: held-out student-teacher cosine logged while training."""
import glob
import json
import uuid

import pytest
from mmengine.runner import Runner

from mvp_mm.analysis import load_state_dict
from mvp_mm.engine import MVPAlignmentHook
from mvp_mm.utils import make_imagenet_folder
from tiny import tiny_pretrain_cfg


def train(tmp_path, name, hook):
    cfg = tiny_pretrain_cfg(str(tmp_path / 'in'), str(tmp_path / name),
                            max_iters=4, batch_size=2)
    cfg.experiment_name = f'{name}_{uuid.uuid4().hex}'  # a fresh MessageHub
    # Without per-iteration re-seeding, training's draws depend on the RNG
    # states that the hook must leave as it found them.
    cfg.custom_hooks = [h for h in cfg.custom_hooks
                        if h['type'] != 'IterationSeedHook']
    if hook:
        held_out = dict(cfg.test_dataloader,
                        dataset=dict(cfg.test_dataloader.dataset,
                                     data_prefix='val'))
        cfg.custom_hooks.append(
            dict(type='MVPAlignmentHook', interval=2, dataloader=held_out))
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


def test_hook_logs_held_out_alignment_and_leaves_training_alone(tmp_path):
    make_imagenet_folder(str(tmp_path / 'in'), 2, 4, 80, split='train')
    make_imagenet_folder(str(tmp_path / 'in'), 2, 2, 80, split='val',
                         seed=1)
    plain = train(tmp_path, 'plain', hook=False)
    hooked = train(tmp_path, 'hooked', hook=True)

    # Same seed, same losses: the hook's masks use their own RNG states.
    losses = [r.message_hub.get_scalar('train/loss').data[0]
              for r in (plain, hooked)]
    assert len(losses[0]) == 4
    assert (losses[0] == losses[1]).all()

    scalars = glob.glob(str(tmp_path / 'hooked' / '*' / 'vis_data' /
                            'scalars.json'))
    assert len(scalars) == 1
    with open(scalars[0]) as f:
        logged = [json.loads(line) for line in f]
    evaluations = [e for e in logged if 'alignment/cls' in e]
    assert [e['step'] for e in evaluations] == [2, 4]
    for entry in evaluations:
        for key in ('cls', 'masked', 'visible'):
            assert -1.0 <= entry[f'alignment/{key}'] <= 1.0
    # The student trained between the two evaluations.
    assert evaluations[0]['alignment/cls'] != evaluations[1]['alignment/cls']
    # Other hooks read the latest evaluation from the message hub.
    for key in ('cls', 'masked', 'visible'):
        assert hooked.message_hub.get_scalar(f'alignment/{key}').current() \
            == pytest.approx(evaluations[1][f'alignment/{key}'])

    hook = next(h for h in hooked.hooks if isinstance(h, MVPAlignmentHook))
    hooked.model.train()
    first = hook.evaluate(hooked.model)
    assert hooked.model.training  # mode restored
    # Fixed held-out masks: evaluations are comparable over time.
    assert hook.evaluate(hooked.model) == first
    assert first['alignment/cls'] == evaluations[1]['alignment/cls']

    # The analysis tools read the run's checkpoint (message hub and all)
    # weights-only.
    weights = load_state_dict(str(tmp_path / 'hooked' / 'iter_4.pth'))
    assert set(weights) == set(hooked.model.state_dict())


def test_hook_rejects_a_zero_interval():
    with pytest.raises(ValueError, match='interval'):
        MVPAlignmentHook(dataloader=dict(), interval=0)
