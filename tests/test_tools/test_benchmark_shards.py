"""``tools/benchmark.py CONFIG --data --shards DIR``: the pipeline fed from
shards and from folders of the same photos, in one run (smoke test: the
JSON's fields, no timing assertions)."""
import json
import os
import os.path as osp

from tiny import PRETRAIN_CFG, REPO, run_tool


def test_shards_benchmark_writes_its_json(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(osp.join(REPO, 'tools'))  # benchmarking/
    out = tmp_path / 'shards.json'
    scratch = tmp_path / 'scratch'
    run_tool('benchmark.py', PRETRAIN_CFG, '--data', '--shards', scratch,
             '--workers', '1', '--data-images', '8', '--steps', '1',
             '--json', out)
    with open(out) as f:
        result = json.load(f)
    assert result['mode'] == 'data-shards'
    data = result['shards']
    assert data['images'] == 8 and data['workers'] == 1
    assert data['shards'] >= 1 and data['same_samples'] is True
    for name in ('folders', 'shards'):
        assert data[f'{name}_img_per_s_per_worker'] > 0
        assert data['cpu_ms_per_img'][name] > 0
    assert data['ratio_shards_vs_folders'] > 0
    assert data['conversion']['mb_per_s'] > 0
    assert 'shards_not_slower' in data['targets_met']
    assert os.listdir(scratch) == []  # its photos and shards are removed
