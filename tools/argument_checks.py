"""Command-line argument types for the tools, in the standard library only.

Every tool parses and checks its arguments before it imports torch,
mmengine or mvp_mm (seconds of imports), so ``--help`` answers at once and
a wrong argument (a config path with a typo, a checkpoint that does not
exist, an unknown flag) is reported at once, before any model is built or
config dumped. The ``type=`` functions here raise
``argparse.ArgumentTypeError``: argparse prints the usage and the message
and exits with status 2.

Paper: `MVP: Multimodality-guided Visual Pre-training
<https://arxiv.org/abs/2203.05175>`_.
"""
import argparse
import difflib
import glob
import os.path as osp
from typing import Callable, List, Optional, Tuple

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _remote(path: str) -> bool:
    """``s3://...``, ``https://...``: read by mmengine's file backends,
    not checked here."""
    return '://' in path


def _known_configs(typed: str) -> List[str]:
    """The repository's configs, and the ``.py`` files beside the typed
    path, as paths relative to the working directory."""
    found = glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    folder = osp.dirname(typed)
    if folder and osp.isdir(folder):
        found += glob.glob(osp.join(folder, '*.py'))
    return sorted({osp.relpath(osp.abspath(path)) for path in found})


def closest_configs(typed: str, count: int = 3) -> List[str]:
    """The existing configs most like ``typed`` (``difflib``), by the whole
    path first, else by the file name alone.

    Args:
        typed (str): The config path as the user typed it.
        count (int): At most this many. Defaults to 3.

    Returns:
        List[str]: Paths relative to the working directory, best first.
    """
    known = _known_configs(typed)
    matches = difflib.get_close_matches(
        osp.normpath(typed), known, n=count, cutoff=0.6)
    if matches:
        return matches
    by_name = {}
    for path in known:
        by_name.setdefault(osp.basename(path), path)
    names = difflib.get_close_matches(
        osp.basename(typed), list(by_name), n=count, cutoff=0.6)
    return [by_name[name] for name in names]


def config_file(path: str) -> str:
    """``type=`` for a config argument: an existing file, or an error that
    names the closest existing configs."""
    if _remote(path) or osp.isfile(path):
        return path
    close = closest_configs(path, count=1)
    hint = f' Did you mean {close[0]}?' if close else (
        f' The configs are under {osp.relpath(osp.join(REPO, "configs"))}.')
    raise argparse.ArgumentTypeError(
        f'config file {path!r} does not exist.{hint}')


def _files_like(folder: str, pattern: str) -> str:
    """What ``folder`` holds that matches ``pattern``, newest last."""
    if not osp.isdir(folder):
        return f'there is no folder {folder}'
    found = sorted(glob.glob(osp.join(glob.escape(folder), pattern)),
                   key=osp.getmtime)
    where = folder if folder != '.' else 'the working directory'
    if not found:
        return f'{where} holds no {pattern} file'
    return f'{where} holds ' + ', '.join(
        osp.basename(path) for path in found[-6:])


def existing_file(what: str, fix: str, pattern: Optional[str] = '*.pth',
                  keep: Tuple[str, ...] = ()) -> Callable[[str], str]:
    """A ``type=`` that accepts an existing file (or a remote path).

    Args:
        what (str): What the file is, e.g. ``'checkpoint'``.
        fix (str): What to pass instead, for the error.
        pattern (str, optional): The error lists the files like this in
            the folder named (none: no list). Defaults to ``'*.pth'``.
        keep (Tuple[str, ...]): Values accepted as they are (e.g.
            ``('auto', )``). Defaults to none.

    Returns:
        Callable[[str], str]: The argument type.
    """

    def check(path: str) -> str:
        if path in keep or _remote(path) or osp.isfile(path):
            return path
        problem = 'is a folder' if osp.isdir(path) else 'does not exist'
        folder = osp.dirname(path) or '.'
        listing = f' ({_files_like(folder, pattern)})' if pattern else ''
        raise argparse.ArgumentTypeError(
            f'{what} {path!r} {problem}{listing}: {fix}.')

    check.__name__ = what  # argparse names the type in some messages
    return check


def existing_folder(what: str) -> Callable[[str], str]:
    """A ``type=`` that accepts an existing folder.

    Args:
        what (str): What the folder is, e.g. ``'ImageNet root'``.

    Returns:
        Callable[[str], str]: The argument type.
    """

    def check(path: str) -> str:
        if osp.isdir(path):
            return path
        raise argparse.ArgumentTypeError(
            f'{what} {path!r} is not a folder'
            + (' (it is a file)' if osp.exists(path) else '') + '.')

    check.__name__ = what
    return check


def output_file(path: str) -> str:
    """``type=`` for a file the tool writes: its folder must exist (the
    tool would otherwise fail after the work is done)."""
    folder = osp.dirname(osp.abspath(path))
    if _remote(path) or osp.isdir(folder):
        return path
    raise argparse.ArgumentTypeError(
        f'cannot write {path!r}: the folder {folder!r} does not exist; '
        'create it first.')


def positive_int(text: str) -> int:
    """``type=`` for a count that must be 1 or more (e.g. ``--accumulate``,
    batches per optimizer step)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f'{text!r} is not a whole number of 1 or more.')
    return value


class CfgOptionsAction(argparse.Action):
    """mmengine's ``DictAction`` (``--cfg-options key=value ...``), imported
    only when the option is given, so parsing stays import-free otherwise;
    an entry without ``=`` is an argparse error, not a traceback."""

    def __call__(self, parser, namespace, values, option_string=None):
        missing = [value for value in values if '=' not in value]
        if missing:
            parser.error(f'{option_string}: {missing} are not KEY=VALUE '
                         'pairs, e.g. model.backbone.drop_path_rate=0.2')
        from mmengine.config import DictAction
        DictAction(self.option_strings, self.dest, nargs=self.nargs)(
            parser, namespace, values, option_string)


def add_cfg_options(parser: argparse.ArgumentParser,
                    example: str = 'key=value key2.sub=value') -> None:
    """The standard OpenMMLab ``--cfg-options`` argument.

    Args:
        parser (argparse.ArgumentParser): The tool's parser.
        example (str): Shown in the help.
    """
    parser.add_argument(
        '--cfg-options', nargs='+', action=CfgOptionsAction,
        help=f'override config entries, e.g. {example}')

