"""tools/sbatch_train.sh under stand-in sbatch / srun / scontrol programs
(no Slurm here): the submission asks for --signal=B:USR1@N and --requeue;
in the job, SIGUSR1 to the batch shell reaches both ranks (at different
times), which agree, save one checkpoint and exit 75 after rank 0 requeued
the job once; the requeued job resumes from it on its own and finishes."""
import glob
import json
import os
import os.path as osp
import socket
import subprocess
import sys

from reliability_tiny import REPO, logged_losses, reliable_tiny_cfg

from mvp_mm.engine.resume import is_complete_checkpoint, step_of
from mvp_mm.utils import make_imagenet_folder

SCRIPT = osp.join(REPO, 'tools', 'sbatch_train.sh')
JOB_ID = '4242'
MAX_ITERS = 10

# Each stand-in appends its argv to $STANDIN_LOG, one JSON list a line.
_RECORD = """#!{python}
import json, os, sys
with open(os.environ['STANDIN_LOG'], 'a') as f:
    f.write(json.dumps([os.path.basename(sys.argv[0])] + sys.argv[1:]) + '\\n')
"""
_SBATCH = _RECORD + "print('Submitted batch job {job}')\n"
_SCONTROL = _RECORD + """
if sys.argv[1:3] == ['show', 'hostname']:
    print('127.0.0.1')
"""
# srun: SLURM_NTASKS copies of the command, SLURM_PROCID / SLURM_LOCALID
# set; a signal is forwarded to every task, as srun does, here to the last
# task first and to the others a second later (a signal reaching the nodes
# at different times); the exit status is the tasks' highest.
_SRUN = _RECORD + """
import signal, subprocess, time
command = sys.argv[1:]
while command[0].startswith('-'):
    command.pop(0)
tasks = [subprocess.Popen(command, env=dict(
    os.environ, SLURM_PROCID=str(rank), SLURM_LOCALID=str(rank)))
    for rank in range(int(os.environ['SLURM_NTASKS']))]

def forward(signum, frame):
    for n, task in enumerate(reversed(tasks)):
        if n:
            time.sleep(1)
        if task.poll() is None:
            task.send_signal(signum)

signal.signal(signal.SIGUSR1, forward)
signal.signal(signal.SIGTERM, forward)
codes = [task.wait() for task in tasks]
sys.exit(max(c if c >= 0 else 128 - c for c in codes))
"""


def _standins(tmp_path) -> dict:
    """A bin/ folder with the stand-ins; the environment that puts it
    first on PATH."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    for name, text in (('sbatch', _SBATCH), ('scontrol', _SCONTROL),
                       ('srun', _SRUN)):
        path = bin_dir / name
        path.write_text(text.format(python=sys.executable, job=JOB_ID))
        path.chmod(0o755)
    return dict(os.environ, PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
                STANDIN_LOG=str(tmp_path / 'calls.jsonl'))


def _calls(env: dict) -> list:
    if not osp.isfile(env['STANDIN_LOG']):
        return []
    with open(env['STANDIN_LOG']) as f:
        return [json.loads(line) for line in f]


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return str(s.getsockname()[1])


def test_sbatch_submits_with_signal_and_requeue(tmp_path):
    env = dict(_standins(tmp_path), GPUS='16', GPUS_PER_NODE='8',
               TIME='24:00:00', SIGNAL_SECONDS='300')
    work = str(tmp_path / 'work')
    result = subprocess.run(
        ['bash', SCRIPT, 'gpu', 'mvp', 'configs/pretrain/x.py', work, '--amp'],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f'Submitted batch job {JOB_ID}'
    tools = osp.join(REPO, 'tools')
    assert _calls(env) == [[
        'sbatch', '-p', 'gpu', '--job-name=mvp', '--nodes=2', '--ntasks=16',
        '--ntasks-per-node=8', '--gres=gpu:8', '--cpus-per-task=5',
        '--time=24:00:00', '--signal=B:USR1@300', '--requeue',
        '--open-mode=append', f'--output={work}/slurm-%j.out',
        f'--export=ALL,MVP_MM_TOOLS={tools}', SCRIPT,
        'configs/pretrain/x.py', work, '--amp'
    ]]
    assert osp.isdir(work)  # for the output file


def _run_job(env: dict, config: str, work: str, out: str,
             pid_file: str = None, **job_env) -> int:
    """The batch script as Slurm runs it in job JOB_ID (2 tasks, 1 node)."""
    env = dict(env, MVP_MM_TOOLS=osp.join(REPO, 'tools'), SLURM_JOB_ID=JOB_ID,
               SLURM_NTASKS='2', SLURM_NODELIST='node1',
               MASTER_PORT=_free_port(), PYTHON=sys.executable,
               PYTHONPATH=osp.join(REPO, 'tests'), OMP_NUM_THREADS='1',
               **job_env)
    with open(out, 'a') as log:
        job = subprocess.Popen(['bash', SCRIPT, config, work], cwd=REPO,
                               env=env, stdout=log, stderr=subprocess.STDOUT)
        if pid_file is not None:
            with open(pid_file, 'w') as f:
                f.write(str(job.pid))
        return job.wait(timeout=300)


def test_slurm_job_saves_requeues_itself_and_resumes(tmp_path):
    env = _standins(tmp_path)
    data = str(tmp_path / 'in')
    make_imagenet_folder(data, 4, 4, 80)
    work = str(tmp_path / 'work')
    out = str(tmp_path / f'slurm-{JOB_ID}.out')
    pid_file = str(tmp_path / 'batch_shell.pid')
    config = str(tmp_path / 'cfg.py')
    cfg = reliable_tiny_cfg(data, work, MAX_ITERS, batch_size=2,
                            checkpoint_interval=MAX_ITERS)
    cfg.model.backbone.drop_path_rate = 0.0
    plain_hooks = list(cfg.custom_hooks)
    # Slurm's SIGUSR1 to the batch shell after iteration 2 (the hook sends
    # it), iterations slow enough for it to arrive long before the end.
    cfg.custom_imports.imports.append('cluster_test_hooks')
    cfg.custom_hooks += [
        dict(type='SendSignalHook', signal_name='SIGUSR1', iteration=2,
             rank=0, pid_file=pid_file),
        dict(type='SlowIterationHook', seconds=0.4)
    ]
    cfg.dump(config)

    status = _run_job(env, config, work, out, pid_file)
    with open(out) as f:
        output = f.read()
    assert status == 75, output[-3000:]
    tools = osp.join(REPO, 'tools')
    srun = [sys.executable, '-u', osp.join(tools, 'train.py'), config,
            f'--work-dir={work}', '--launcher=slurm']
    calls = _calls(env)
    assert [c for c in calls if c[0] == 'srun'] == [
        ['srun', '--kill-on-bad-exit=1'] + srun]
    assert [c for c in calls if c[:2] == ['scontrol', 'requeue']] == [
        ['scontrol', 'requeue', JOB_ID]]
    saved = glob.glob(osp.join(work, '*.pth*'))
    assert len(saved) == 1 and is_complete_checkpoint(saved[0]), saved
    stop = step_of(saved[0], 'signal_iter_{}.pth')
    assert 2 <= stop < MAX_ITERS
    assert f'Slurm job {JOB_ID} requeued' in output
    assert [r['iter'] for r in logged_losses(work)] == list(
        range(1, stop + 1))

    # The requeued job: the same script and arguments, SLURM_RESTART_COUNT
    # set by Slurm (and the test's signal hooks gone).
    cfg.custom_hooks = plain_hooks
    cfg.dump(config)
    status = _run_job(env, config, work, out, SLURM_RESTART_COUNT='1')
    with open(out) as f:
        output = f.read()
    assert status == 0, output[-3000:]
    assert 'SLURM_RESTART_COUNT=1: a restarted run, so it resumes' in output
    calls = _calls(env)
    assert [c for c in calls if c[0] == 'srun'] == [
        ['srun', '--kill-on-bad-exit=1'] + srun] * 2
    assert len([c for c in calls if c[:2] == ['scontrol', 'requeue']]) == 1
    assert [r['iter'] for r in logged_losses(work)] == list(
        range(1, MAX_ITERS + 1))
    assert is_complete_checkpoint(osp.join(work, f'iter_{MAX_ITERS}.pth'))
