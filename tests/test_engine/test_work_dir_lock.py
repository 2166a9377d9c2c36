"""One run per work dir (issue 22): a second training run in the same work
dir stops at once, naming the first and writing nothing; a killed holder
(kill -9) blocks nobody; a restart of the same job waits for the previous
run to exit; without flock, a lock file with a dead pid is taken over and
one with a live pid refuses; tools/test.py, export and the analysis tools
take no lock.

The lock holders are small processes that load only
``mvp_mm/engine/work_dir_lock.py`` (no torch), except one real
``tools/train.py`` run of the tiny config, paused after training while it
holds its work dir.
"""
import contextlib
import errno
import glob
import json
import os
import os.path as osp
import signal
import socket
import subprocess
import sys
import time
from unittest import mock

import pytest
from mmengine.runner import Runner
from tiny import REPO, TINY_CLIP, run_tool, tiny_pretrain_cfg

from mvp_mm.engine import WorkDirLockedError, lock_work_dir
from mvp_mm.engine.work_dir_lock import LOCK_FILE
from mvp_mm.utils import make_imagenet_folder

MODULE = osp.join(REPO, 'mvp_mm', 'engine', 'work_dir_lock.py')
TRAIN = osp.join(REPO, 'tools', 'train.py')
NO_FLOCK = OSError(errno.ENOLCK, 'No locks available')

# Locks WORK_DIR, prints 'locked', then holds it until stdin closes (or it
# is killed).
HOLDER = '''
import importlib.util, sys
spec = importlib.util.spec_from_file_location('work_dir_lock', sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
module.lock_work_dir(sys.argv[2], wait=float(sys.argv[3]))
print('locked', flush=True)
sys.stdin.read()
'''


def _holder(work_dir, wait=0, **env):
    """A process holding ``work_dir``'s lock (returned once it holds it)."""
    process = subprocess.Popen(
        [sys.executable, '-c', HOLDER, MODULE, str(work_dir), str(wait)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=dict(os.environ, **env))
    line = process.stdout.readline()
    assert line == 'locked\n', process.communicate()[1][-2000:]
    return process


def _refused(work_dir, holder_pid) -> str:
    with pytest.raises(WorkDirLockedError) as error:
        lock_work_dir(str(work_dir), wait=0)
    message = str(error.value)
    assert f'host {socket.gethostname()}, pid {holder_pid}, since ' in message
    assert 'another --work-dir' in message
    return message


@pytest.mark.parametrize('method', ['flock', 'no-flock'])
def test_killed_holder_does_not_block_the_next_run(tmp_path, method):
    """kill -9 of a holder: flock dies with it; the lock file it leaves
    (no flock) names a dead pid and is taken over. While it lived, the
    lock refused (no flock: a lock file with a live pid). Without flock the
    holder uses the lock file as MVP_MM_WORK_DIR_LOCK=file makes it, this
    process as a file system without flock makes it."""
    holder = _holder(tmp_path, **({'MVP_MM_WORK_DIR_LOCK': 'file'}
                                  if method == 'no-flock' else {}))
    with mock.patch('fcntl.flock', side_effect=NO_FLOCK) if \
            method == 'no-flock' else contextlib.nullcontext():
        _refused(tmp_path, holder.pid)
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        lock = lock_work_dir(str(tmp_path), wait=0)
        with open(tmp_path / LOCK_FILE) as f:
            assert json.load(f)['pid'] == os.getpid()
        lock.release()
    if method == 'no-flock':
        assert not osp.exists(tmp_path / LOCK_FILE)  # removed on release


def test_lock_file_of_another_host_is_taken_over_after_its_heartbeat(
        tmp_path):
    record = dict(host='elsewhere-node', pid=4242, started=time.time() - 900,
                  method='file', token='x')
    (tmp_path / LOCK_FILE).write_text(json.dumps(record))
    with mock.patch('fcntl.flock', side_effect=NO_FLOCK):
        with pytest.raises(WorkDirLockedError,
                           match='host elsewhere-node, pid 4242.*last '
                           'heartbeat 0 s ago'):
            lock_work_dir(str(tmp_path), wait=0)
        old = time.time() - 400  # > STALE_AFTER without a heartbeat
        os.utime(tmp_path / LOCK_FILE, (old, old))
        lock_work_dir(str(tmp_path), wait=0).release()


TORCHRUN = dict(TORCHELASTIC_RUN_ID='none')  # torchrun's default run id


@pytest.mark.parametrize('holder_env, other_jobs, restart_env', [
    (dict(SLURM_JOB_ID='77'), [dict(SLURM_JOB_ID='78'), {}],
     dict(SLURM_JOB_ID='77')),  # a Slurm requeue keeps the job id
    (dict(TORCHRUN, TORCHELASTIC_RESTART_COUNT='0'),
     [dict(TORCHRUN, TORCHELASTIC_RESTART_COUNT='0'),  # a new torchrun
      dict(TORCHRUN, TORCHELASTIC_RESTART_COUNT='1', AGENT='other')],
     dict(TORCHRUN, TORCHELASTIC_RESTART_COUNT='1')),
], ids=['slurm', 'torchrun'])
def test_restart_of_the_same_job_waits_for_the_holder(
        tmp_path, monkeypatch, holder_env, other_jobs, restart_env):
    """Another job is refused at once; a restart of the holder's job waits
    (bounded) while the holder lives and takes over once it has exited.
    torchrun: the holder's agent (its parent) is this process, so the
    restart here runs as that agent's child (``os.getppid``)."""
    holder = _holder(tmp_path, **holder_env)
    for env in other_jobs:
        with monkeypatch.context() as patch:
            for key, value in env.items():
                if key != 'AGENT':
                    patch.setenv(key, value)
            if 'AGENT' not in env:
                patch.setattr(os, 'getppid', os.getpid)
            message = _refused(tmp_path, holder.pid)
        assert 'restart of the same job' not in message
    for key, value in restart_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(os, 'getppid', os.getpid)
    with pytest.raises(WorkDirLockedError,
                       match='restart of the same job and waited 1 s'):
        lock_work_dir(str(tmp_path), wait=1)
    monkeypatch.setenv('MVP_MM_WORK_DIR_LOCK_WAIT', '60')
    holder.stdin.close()  # the previous run exits while this one waits
    lock = lock_work_dir(str(tmp_path))  # once the holder has unlocked
    assert holder.wait(30) == 0  # it ended normally, not pushed aside
    lock.release()


# A real tools/train.py run that holds its work dir, paused after training.

@pytest.fixture(scope='module')
def paused_run(tmp_path_factory):
    root = tmp_path_factory.mktemp('lock')
    make_imagenet_folder(str(root / 'data'), 4, 2, 80)
    work = root / 'work'
    cfg = tiny_pretrain_cfg(str(root / 'data'), str(work), max_iters=2)
    cfg.model.target_generator.model_overrides = dict(
        TINY_CLIP, text_cfg=dict(context_length=77, vocab_size=49408,
                                 width=16, heads=2, layers=1))
    config = str(root / 'tiny_mvp.py')
    cfg.dump(config)
    cfg.custom_imports.imports.append('reliability_test_hooks')
    cfg.custom_hooks.append(dict(
        type='PauseAfterTrainHook', paused=str(root / 'paused'),
        resume=str(root / 'resume')))
    cfg.dump(str(root / 'paused_cfg.py'))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [REPO, osp.join(REPO, 'tests')]))
    first = subprocess.Popen(
        [sys.executable, TRAIN, str(root / 'paused_cfg.py')], cwd=REPO,
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not osp.exists(root / 'paused'):
        assert first.poll() is None, first.communicate()[1][-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.1)
    yield dict(root=root, work=work, config=config, process=first,
               snapshot=_snapshot(work))
    (root / 'resume').touch()
    if first.poll() is None:
        try:
            first.wait(60)
        except subprocess.TimeoutExpired:
            first.kill()


def _snapshot(folder) -> dict:
    return {osp.relpath(path, folder): (os.stat(path).st_size,
                                        os.stat(path).st_mtime_ns)
            for path in glob.glob(osp.join(folder, '**'), recursive=True)
            if osp.isfile(path)}


def test_second_train_run_is_refused_and_writes_nothing(paused_run):
    with pytest.raises(WorkDirLockedError) as error:
        run_tool('train.py', paused_run['config'])  # the config's work dir
    message = str(error.value)
    pid = paused_run['process'].pid
    assert f'host {socket.gethostname()}, pid {pid}, since ' in message
    assert 'paused_cfg.py' in message  # the other run's command
    assert 'pass another --work-dir, or wait until that run ends' in message
    assert _snapshot(paused_run['work']) == paused_run['snapshot']


def test_stock_runner_is_refused_when_training_starts(paused_run):
    """mmpretrain's own tools/train.py: the config's WorkDirLockHook."""
    cfg = tiny_pretrain_cfg(str(paused_run['root'] / 'data'),
                            str(paused_run['work']), max_iters=2)
    with pytest.raises(WorkDirLockedError,
                       match=f"pid {paused_run['process'].pid}"):
        Runner.from_cfg(cfg).train()
    for name, stat in paused_run['snapshot'].items():
        if name.endswith('.pth') or name == 'last_checkpoint':
            assert _snapshot(paused_run['work'])[name] == stat


def test_read_only_tools_take_no_lock(paused_run):
    """tools/test.py (same config, same work dir), export and the analysis
    tools run while training holds the work dir, and leave its lock."""
    root, work = paused_run['root'], paused_run['work']
    config, checkpoint = paused_run['config'], str(work / 'iter_2.pth')
    run_tool('test.py', config, checkpoint, '--out', root / 'metrics.json')
    assert osp.isfile(root / 'metrics.json')
    run_tool('export_timm.py', checkpoint, root / 'mvp.safetensors')
    images = sorted(glob.glob(str(root / 'data' / 'train' / '*' / '*')))[:1]
    run_tool('analysis/visualize_attention.py', config, checkpoint, *images,
             '--out', root / 'attention', '--size', 64)
    (root / 'names.txt').write_text('a\nb\nc\nd\n')
    run_tool('analysis/zero_shot.py', config, checkpoint, '--imagenet',
             root / 'data' / 'train', '--class-names', root / 'names.txt',
             '--templates', 'simple', '--num-workers', 0,
             '--encoders', 'mvp', '--out', root / 'zero_shot.json')
    assert osp.isfile(root / 'zero_shot.json')
    with open(work / LOCK_FILE) as f:
        assert json.load(f)['pid'] == paused_run['process'].pid


def test_first_run_finishes_untouched(paused_run):
    """Last in this file: lets the paused run finish."""
    (paused_run['root'] / 'resume').touch()
    first = paused_run['process']
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err[-3000:]
    after = _snapshot(paused_run['work'])
    for name, stat in paused_run['snapshot'].items():
        if name.endswith('.pth') or name == 'last_checkpoint':
            assert after[name] == stat
    # the lock released (record cleared) at exit
    assert (paused_run['work'] / LOCK_FILE).read_text() == ''
