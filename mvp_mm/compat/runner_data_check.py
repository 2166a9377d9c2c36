"""Check the data of each loop before mmengine's Runner builds it.

``tools/train.py`` and ``tools/test.py`` check the data root before they
build anything (:func:`~mvp_mm.datasets.check_dataloader_data`). mmseg's and
mmpretrain's own ``tools/train.py`` / ``tools/test.py`` import mvp_mm only
through the config's ``custom_imports``; :func:`install_runner_data_check`
gives them the same checks and messages, where mmengine would first build
the datasets: at the start of ``Runner.train`` (the train data, and the val
data if the run validates), ``Runner.val`` and ``Runner.test``, each for
the data it reads (a test run needs no train data). The model is built by
then (in ``Runner.__init__``), so with the stock tools a data error comes
after the model build, not before it.
"""
import functools

from mmengine.runner import Runner

_FLAG = '__mvp_mm_data_check__'


def _loops_train(runner: Runner) -> tuple:
    return ('train', 'val') if runner._val_loop is not None else ('train', )


def _with_data_check(method, loops):
    """``method`` of Runner, checking the data of ``loops(runner)`` first."""

    @functools.wraps(method)
    def checked(runner: Runner, *args, **kwargs):
        from ..datasets.data_root_check import check_dataloader_data
        names = loops(runner)
        check_dataloader_data(
            {f'{loop}_dataloader': getattr(runner, f'_{loop}_dataloader')
             for loop in names}, names)
        return method(runner, *args, **kwargs)

    setattr(checked, _FLAG, True)
    return checked


def install_runner_data_check() -> bool:
    """Wrap ``Runner.train`` / ``val`` / ``test`` (once).

    Returns:
        bool: True (installed now or before).
    """
    if getattr(Runner.train, _FLAG, False):
        return True
    Runner.train = _with_data_check(Runner.train, _loops_train)
    Runner.val = _with_data_check(Runner.val, lambda runner: ('val', ))
    Runner.test = _with_data_check(Runner.test, lambda runner: ('test', ))
    return True
