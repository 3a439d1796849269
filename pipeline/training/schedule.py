"""The Transformer's learning rate: a linear warmup to its peak, then 1/sqrt(step) decay.

As in Vaswani et al. (2017), with the peak given directly: ``peak * min(step / warmup,
sqrt(warmup / step))``. The step is the optimizer's own iteration count, which checkpoints
keep, so a resumed run continues the same curve.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="pipeline")
class WarmupInverseSqrt(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, peak: float, warmup_steps: int):
        self.peak, self.warmup_steps = float(peak), int(warmup_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32") + 1.0  # the first update uses step 1, not 0
        warmup = float(self.warmup_steps)
        return self.peak * ops.minimum(step / warmup, ops.sqrt(warmup / step))

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps}
