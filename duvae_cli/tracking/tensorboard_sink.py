"""TensorBoard: event files in RUN/tensorboard/ (so `tensorboard --logdir runs` lists every run).

Written through torch's own `SummaryWriter`. A resumed run opens the same directory with
`purge_step` = the first step it logs: TensorBoard then hides any event of an earlier attempt at that
step or later (logged after the checkpoint the run resumed from), so the curves continue without
duplicates.
"""

from __future__ import annotations

from pathlib import Path

SUBDIR = "tensorboard"


class TensorBoardSink:
    def __init__(self, run_dir: Path, purge_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / SUBDIR), purge_step=purge_step)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, global_step=step)

    def histogram(self, step: int, name: str, values) -> None:
        self.writer.add_histogram(name, values, global_step=step)

    def start(self, params: dict, tags: dict[str, str]) -> None:
        """Nothing: TensorBoard's HParams plugin pairs the config with final metrics (`hparams`)."""

    def hparams(self, step: int, params: dict, metrics: dict[str, float]) -> None:
        """The HParams plugin's records in this run's own event file (SummaryWriter.add_hparams
        would open a second run directory), and the final metrics as scalars."""
        from torch.utils.tensorboard.summary import hparams

        experiment, start, end = hparams(params, {f"final/{k}": v for k, v in metrics.items()})
        for summary in (experiment, start, end):
            self.writer.file_writer.add_summary(summary)
        self.scalars(step, {f"final/{k}": v for k, v in metrics.items()})

    def close(self, status: str = "FINISHED") -> None:
        self.writer.close()
