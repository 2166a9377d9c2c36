"""The demo's console line per epoch (tools/demo.py).

Paper: `MVP: Multimodality-guided Visual Pre-training
<https://arxiv.org/abs/2203.05175>`_.
"""
import time

from mmengine.hooks import Hook


class ProgressHook(Hook):
    """A console line per epoch: the loss averaged over the epoch's
    iterations (``curves.png`` plots it per logged iteration), the latest
    held-out alignment (from ``MVPAlignmentHook``), the k-NN top-1 accuracy
    after an epoch that measured it (``KNNMonitorHook``), the time since
    training started."""

    priority = 'LOWEST'

    def before_train(self, runner) -> None:
        self.start = time.perf_counter()
        self.knn_evaluations = 0

    def after_train_epoch(self, runner) -> None:
        hub = runner.message_hub
        loss = hub.get_scalar('train/loss').mean(len(runner.train_dataloader))
        line = (f'epoch {runner.epoch + 1}/{runner.max_epochs}  '
                f'iter {runner.iter}/{runner.max_iters}  '
                f'loss (epoch mean) {loss:+.4f}')
        if 'alignment/cls' in hub.log_scalars:
            line += '  held-out cosine: ' + '  '.join(
                f'{key} {hub.get_scalar("alignment/" + key).current():.3f}'
                for key in ('cls', 'masked', 'visible'))
        if 'knn/cls_top1' in hub.log_scalars:
            evaluations = len(hub.get_scalar('knn/cls_top1').data[0])
            if evaluations > self.knn_evaluations:
                self.knn_evaluations = evaluations
                top1 = {kind: hub.get_scalar(f'knn/{kind}_top1').current()
                        for kind in ('cls', 'patch_mean')}
                line += '  k-NN top-1: ' + '  '.join(
                    f'{kind} {value:.0f}%' for kind, value in top1.items())
        print(f'{line}  ({time.perf_counter() - self.start:.0f} s)',
              flush=True)
