"""Training: state, step, optimizer, checkpoints, data parallelism, shared setup, the loop.

`state` (`TrainState`), `step` (the pure train/eval step), `optim` (Adam + EMA),
`checkpoint` (orbax, verified restores, preemption), `guard` (divergence checks),
`run_lock` (one run per workdir), `run_config` (the config record checked on
resume), `parallel` (the 'data' mesh over every device
and host), `setup` (what training, sampling, evaluation and bits/dim build a run
from: `Components`, `build_components`, `load_state`, `ema_score_fn`, sample
grids), `loop` (`train_and_evaluate`: `--mode=train`; `train`: the loop itself,
on typed `TrainSettings`), `classifier` (`train_classifier`: `--mode=train_classifier`,
the noise-conditional classifier of classifier guidance, trained by the same loop;
`load_classifier_log_prob_fn`).
"""

from scorejax.training.classifier import (build_classifier_components, classifier_workdir,
                                          load_classifier, load_classifier_log_prob_fn,
                                          train_classifier)
from scorejax.training.guard import NonFiniteLossError
from scorejax.training.loop import (PREEMPTED_EXIT_CODE, Preempted, TrainSettings, train,
                                    train_and_evaluate)
from scorejax.training.setup import (Components, SampleSettings, build_components, ema_score_fn,
                                     init_state, load_state, make_snapshot_sampler,
                                     save_snapshot_samples)
from scorejax.training.state import TrainState
from scorejax.training.step import make_eval_step, make_multi_step, make_train_step

__all__ = [
    "Components", "NonFiniteLossError", "PREEMPTED_EXIT_CODE", "Preempted", "SampleSettings", "TrainSettings", "TrainState",
    "build_components", "ema_score_fn", "init_state", "load_state", "make_eval_step",
    "make_multi_step", "make_snapshot_sampler", "make_train_step", "save_snapshot_samples",
    "train", "train_and_evaluate", "train_classifier", "build_classifier_components",
    "classifier_workdir", "load_classifier", "load_classifier_log_prob_fn",
]
