"""One run per work dir: an exclusive lock that rank 0 holds until exit.

Two training runs in one work dir overwrite each other's checkpoints,
``last_checkpoint`` and config dump, and ``--resume`` then continues from
whichever wrote last. :func:`lock_work_dir` makes the second run stop at once
with an error naming the first (host, pid, since when) and the fix.

- The lock is ``fcntl.flock`` on ``WORK_DIR/run.lock``: the kernel (or the
  NFS lock manager) drops it when the process dies, ``kill -9`` included,
  so no stale lock is ever left. The file also holds the holder's record
  (host, pid, start time, job), read for the error message.
- Where ``flock`` fails (``ENOLCK``, ``EOPNOTSUPP``, ``ENOSYS``: NFS without
  a lock manager, Lustre without ``-o flock``), or with
  ``MVP_MM_WORK_DIR_LOCK=file`` (file systems whose ``flock`` is local to
  one node: Lustre ``localflock``, NFS ``local_lock=all``), the lock is the
  file itself, created exclusively, holding the record and touched every
  :data:`HEARTBEAT` s. A lock file left by a dead run is taken over: on the
  same host when its pid is gone (or is another process now, or the host
  rebooted), from another host when it has had no heartbeat for
  :data:`STALE_AFTER` s.
- A restart of the same job (same ``SLURM_JOB_ID``: a Slurm requeue; same
  ``TORCHELASTIC_RUN_ID`` with ``TORCHELASTIC_RESTART_COUNT`` > 0 and, on
  the same host, the same torchrun agent: a torchrun restart) waits up to
  ``MVP_MM_WORK_DIR_LOCK_WAIT`` s (else the config's
  ``work_dir_lock_wait``, else :data:`DEFAULT_WAIT`) for the previous run
  to exit, then takes over. It never runs alongside it.

Within one process the lock is re-entrant: each :func:`lock_work_dir` on a
held work dir adds a reference that :meth:`WorkDirLock.release` gives back.
"""
import atexit
import errno
import fcntl
import json
import os
import os.path as osp
import socket
import sys
import threading
import time
import uuid
from typing import Dict, Optional

from mmengine.logging import print_log

LOCK_FILE = 'run.lock'
DEFAULT_WAIT = 300.0  # s a restarted run of the same job waits
HEARTBEAT = 30.0  # s between touches of a lock file (no-flock method)
STALE_AFTER = 300.0  # s without a heartbeat: the lock file's run is dead
WAIT_ENV = 'MVP_MM_WORK_DIR_LOCK_WAIT'
METHOD_ENV = 'MVP_MM_WORK_DIR_LOCK'
# flock errors of file systems without working locks
NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS}
_POLL = 0.5  # s between attempts while waiting
_HELD: Dict[str, 'WorkDirLock'] = {}  # realpath of the work dir -> lock


class WorkDirLockedError(RuntimeError):
    """Another run holds the work dir."""


def launch_rank(launcher: str) -> int:
    """The global rank of this process before the process group exists.

    Args:
        launcher (str): ``tools/train.py``'s ``--launcher``: ``'none'``,
            ``'pytorch'`` (``RANK``), ``'slurm'`` (``SLURM_PROCID``) or
            ``'mpi'`` (``OMPI_COMM_WORLD_RANK``).

    Returns:
        int: The rank (0 for ``'none'``).
    """
    name = dict(pytorch='RANK', slurm='SLURM_PROCID',
                mpi='OMPI_COMM_WORLD_RANK').get(launcher)
    return int(os.environ.get(name, 0)) if name else 0


def _boot_id() -> Optional[str]:
    try:
        with open('/proc/sys/kernel/random/boot_id') as f:
            return f.read().strip()
    except OSError:
        return None


def _proc_stat(pid: int):
    """``(state, start time in clock ticks since boot)`` of a process, or
    ``None`` where ``/proc`` does not tell."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            fields = f.read().rsplit(')', 1)[1].split()
        return fields[0], fields[19]
    except (OSError, IndexError):
        return None


def _own_record(method: str) -> dict:
    env = os.environ
    stat = _proc_stat(os.getpid())
    return dict(
        host=socket.gethostname(), pid=os.getpid(), started=time.time(),
        boot_id=_boot_id(), proc_start=stat and stat[1], method=method,
        token=uuid.uuid4().hex, command=' '.join(sys.argv)[:300],
        slurm_job_id=env.get('SLURM_JOB_ID'),
        torchelastic_run_id=env.get('TORCHELASTIC_RUN_ID'),
        restart_count=int(env.get('TORCHELASTIC_RESTART_COUNT', 0)),
        agent_pid=os.getppid())


def _read_record(path: str) -> dict:
    try:
        with open(path) as f:
            return json.loads(f.read() or '{}')
    except (OSError, ValueError):
        return {}


def _alive(record: dict, path: str) -> bool:
    """Whether the run in a lock file's record may still be running."""
    if not record:  # nothing recorded: a writer cut short, or a flock file
        return False
    if record.get('host') != socket.gethostname():
        try:
            return time.time() - os.stat(path).st_mtime < STALE_AFTER
        except FileNotFoundError:
            return False
    if record.get('boot_id') and record['boot_id'] != _boot_id():
        return False  # the host rebooted since
    try:
        os.kill(record['pid'], 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    stat = _proc_stat(record['pid'])
    if stat is None:
        return True
    # a zombie, or the pid is another process now
    return stat[0] != 'Z' and stat[1] == record.get('proc_start', stat[1])


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f'{seconds:.0f} s'
    if seconds < 7200:
        return f'{seconds / 60:.0f} min'
    return f'{seconds / 3600:.1f} h'


def _describe(record: dict, path: str) -> str:
    if not record:
        return 'a run that has not written its record yet'
    started = record.get('started', 0)
    words = [f"host {record.get('host')}", f"pid {record.get('pid')}",
             'since ' + time.strftime('%Y-%m-%d %H:%M:%S %Z',
                                      time.localtime(started)) +
             f' ({_duration(time.time() - started)} ago)']
    if record.get('slurm_job_id'):
        words.append(f"Slurm job {record['slurm_job_id']}")
    if record.get('torchelastic_run_id'):
        words.append(f"torchrun run {record['torchelastic_run_id']} "
                     f"(restart {record.get('restart_count', 0)})")
    if record.get('command'):
        words.append(f"command: {record['command']}")
    if record.get('method') == 'file':
        try:
            beat = time.time() - os.stat(path).st_mtime
            words.append(f'last heartbeat {beat:.0f} s ago (counted as '
                         f'dead after {STALE_AFTER:.0f} s without one)')
        except FileNotFoundError:
            pass
    return ', '.join(words)


def _same_job(holder: dict, me: dict) -> bool:
    """Whether ``me`` is a restart of the job that holds the lock."""
    if me['slurm_job_id'] and holder.get('slurm_job_id') == \
            me['slurm_job_id']:
        return True
    if me['restart_count'] > 0 and me['torchelastic_run_id'] and \
            holder.get('torchelastic_run_id') == me['torchelastic_run_id']:
        # Plain torchrun runs all share the run id 'none'; on one host a
        # restart has the same agent (the workers' parent) as before.
        return holder.get('host') != me['host'] or \
            holder.get('agent_pid') == me['agent_pid']
    return False


class _Held(Exception):

    def __init__(self, record: dict) -> None:
        super().__init__()
        self.record = record


class WorkDirLock:
    """An exclusive lock on a training work dir (see the module docstring).

    Part of the training tooling of `MVP: Multimodality-guided Visual
    Pre-training <https://arxiv.org/abs/2203.05175>`_. Built by
    :func:`lock_work_dir`; released by :meth:`release` or at exit.

    Args:
        work_dir (str): The work dir (created if missing).
    """

    def __init__(self, work_dir: str) -> None:
        self.work_dir = osp.realpath(work_dir)
        self.path = osp.join(self.work_dir, LOCK_FILE)
        self.references = 0
        self.method = os.environ.get(METHOD_ENV, 'flock')
        if self.method not in ('flock', 'file'):
            raise ValueError(
                f'{METHOD_ENV}={self.method!r}: use flock (the default; '
                'the lock file alone where flock does not work) or file '
                '(always the lock file, for file systems whose flock is '
                'local to one node).')
        self.record = _own_record(self.method)
        self._fd: Optional[int] = None
        self._stop_heartbeat = threading.Event()

    def try_acquire(self) -> None:
        """One attempt; raises :class:`_Held` with the holder's record."""
        os.makedirs(self.work_dir, exist_ok=True)
        if self.method == 'flock' and self._try_flock():
            return
        self._try_lock_file()

    def _try_flock(self) -> bool:
        """True if locked; False if this file system has no flock.

        A holder writes its record right after locking and clears it right
        before unlocking, so a held lock with an empty record, or with the
        record of a dead predecessor, is tried again for a moment.
        """
        holder: dict = {}
        for _ in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                holder = _read_record(self.path)
                if holder and (holder.get('host') != socket.gethostname()
                               or _alive(holder, self.path)):
                    raise _Held(holder)
                time.sleep(0.1)
                continue
            except OSError as error:
                os.close(fd)
                if error.errno not in NO_FLOCK:
                    raise
                print_log(
                    f'No working flock on {self.work_dir} '
                    f'({error.strerror}): locking it with a lock file (host, '
                    'pid, heartbeat) instead.', logger='current')
                self.method = self.record['method'] = 'file'
                return False
            try:
                replaced = os.stat(self.path).st_ino != os.fstat(fd).st_ino
            except FileNotFoundError:
                replaced = True
            if replaced:  # a lock-file run removed the file meanwhile
                os.close(fd)
                continue
            holder = _read_record(self.path)
            # a live run that locks with the file alone (MVP_MM_WORK_DIR_LOCK)
            if holder.get('method') == 'file' and _alive(holder, self.path):
                os.close(fd)
                raise _Held(holder)
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(self.record).encode(), 0)
            os.fsync(fd)
            self._fd = fd
            # Forked children (data loader workers) close their copy, so the
            # lock dies with this process, not with its last worker.
            os.register_at_fork(after_in_child=self._close_in_child)
            return True
        raise _Held(holder)

    def _close_in_child(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _holder_record(self) -> dict:
        """A lock file's record; waits a little for one being written."""
        for _ in range(10):
            record = _read_record(self.path)
            if record:
                break
            time.sleep(0.1)
        return record

    def _try_lock_file(self) -> None:
        for _ in range(3):  # a dead holder's file is removed, then retried
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                             0o644)
            except FileExistsError:
                holder = self._holder_record()
                if _alive(holder, self.path):
                    raise _Held(holder)
                if holder:
                    print_log(
                        f'Taking over the lock of {self.work_dir}: its run '
                        f'({_describe(holder, self.path)}) is gone.',
                        logger='current', level=30)
                try:
                    os.remove(self.path)
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, 'w') as f:
                json.dump(self.record, f)
                f.flush()
                os.fsync(f.fileno())
            # Two runs that both found a dead holder's file may each have
            # removed it; the one whose record is there after a moment won.
            time.sleep(0.2)
            holder = _read_record(self.path)
            if holder.get('token') != self.record['token']:
                raise _Held(holder)
            threading.Thread(target=self._heartbeat, daemon=True).start()
            return
        raise _Held(_read_record(self.path))

    def _owns_lock_file(self) -> bool:
        return _read_record(self.path).get('token') == self.record['token']

    def _heartbeat(self) -> None:
        while not self._stop_heartbeat.wait(HEARTBEAT):
            if not self._owns_lock_file():
                print_log(
                    f'{self.path} no longer holds this run\'s record: '
                    'another run took the work dir over (this run went '
                    f'{STALE_AFTER:.0f} s without a heartbeat). Stop one '
                    'of the two runs.', logger='current', level=40)
                return
            try:
                os.utime(self.path)
            except FileNotFoundError:  # released meanwhile
                return

    def release(self) -> None:
        """Give back one reference; the last one unlocks (in the process
        that locked: a forked child never unlocks its parent's lock)."""
        self.references -= 1
        if self.references > 0 or _HELD.get(self.work_dir) is not self or \
                os.getpid() != self.record['pid']:
            return
        _HELD.pop(self.work_dir, None)
        atexit.unregister(self._release_at_exit)
        if self.method == 'flock':  # leave the file, clear the record
            os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None
        else:
            self._stop_heartbeat.set()
            if self._owns_lock_file():
                os.remove(self.path)

    def _release_at_exit(self) -> None:
        self.references = 1
        self.release()


def _wait_seconds(configured: Optional[float]) -> float:
    value = os.environ.get(WAIT_ENV)
    source = WAIT_ENV
    if value is None:
        value, source = configured, 'work_dir_lock_wait'
    if value is None:
        return DEFAULT_WAIT
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1
    if seconds < 0:
        raise ValueError(f'{source}={value!r}: give the seconds (>= 0) a '
                         'restarted run of the same job waits for the '
                         f'previous one to exit (default {DEFAULT_WAIT:.0f}).')
    return seconds


def lock_work_dir(work_dir: str,
                  rank: int = 0,
                  wait: Optional[float] = None) -> Optional[WorkDirLock]:
    """Take the work dir for this run, or stop with a clear error.

    Call before anything reads or writes the work dir (a resume checkpoint
    chosen before a same-job wait could miss the previous run's last
    save). Held until :meth:`WorkDirLock.release` or exit.

    Args:
        work_dir (str): The run's work dir.
        rank (int): This process's global rank; only rank 0 locks.
            Defaults to 0.
        wait (float, optional): Seconds a restart of the same job waits for
            the previous holder to exit (the config's
            ``work_dir_lock_wait``); the environment variable
            ``MVP_MM_WORK_DIR_LOCK_WAIT`` takes precedence. Defaults to
            None: :data:`DEFAULT_WAIT`.

    Returns:
        WorkDirLock or None: The lock (None on ranks other than 0).

    Raises:
        WorkDirLockedError: Another run holds the work dir (for a restart of
            the same job: still, after the wait).
    """
    if rank != 0:
        return None
    held = _HELD.get(osp.realpath(work_dir))
    if held is not None:
        held.references += 1
        return held
    lock = WorkDirLock(work_dir)
    seconds, deadline = _wait_seconds(wait), None
    while True:
        try:
            lock.try_acquire()
            break
        except _Held as held_by:
            holder = held_by.record
        same_job = _same_job(holder, lock.record)
        if deadline is None and same_job:
            deadline = time.monotonic() + seconds
            print_log(
                f'{work_dir} is held by the previous run of this job '
                f'({_describe(holder, lock.path)}): waiting up to '
                f'{seconds:.0f} s ({WAIT_ENV}) for it to exit.',
                logger='current', level=30)
        if not same_job or time.monotonic() >= deadline:
            waited = (f' This run is a restart of the same job and waited '
                      f'{seconds:.0f} s for it to exit ({WAIT_ENV} or the '
                      'config key work_dir_lock_wait sets how long).'
                      if same_job else '')
            raise WorkDirLockedError(
                f'Work dir {lock.work_dir} is in use by another run: '
                f'{_describe(holder, lock.path)}.{waited} Two runs in one '
                "work dir overwrite each other's checkpoints and logs, so "
                'this run stops before writing anything there. Fix: pass '
                'another --work-dir, or wait until that run ends (if it is '
                "a leftover, stop it: kill {pid} on {host}). Lock: "
                '{path}.'.format(pid=holder.get('pid'),
                                 host=holder.get('host'), path=lock.path))
        time.sleep(_POLL)
    lock.references = 1
    _HELD[lock.work_dir] = lock
    atexit.register(lock._release_at_exit)
    return lock
