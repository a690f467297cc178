"""A time-conditional MLP on a 2-D toy distribution (seconds to minutes on a CPU).

Command:
  python -m scorejax.main --config=configs/toy_2d.py --workdir=runs/toy_2d
  python -m scorejax.main --config=configs/toy_2d.py --workdir=runs/moons \
      --config.data.toy_name=two_moons

Expected: about 1–2 minutes on a 2-core CPU for 4000 steps; `runs/toy_2d/samples/`
gets a scatter plot per snapshot, and samples of the default imbalanced mixture
(weights 0.2 / 0.8) recover its weights within a few percent. Toy sets:
imbalanced_mixture, eight_gaussians, two_moons, rings, checkerboard, swiss_roll.
`:smoke` runs 20 steps.
"""

import ml_collections

from configs import blocks, smoke


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()

  config.training = training = ml_collections.ConfigDict()
  training.sde = "vpsde"
  training.continuous = True
  training.reduce_mean = False
  training.likelihood_weighting = False
  training.eps = 1e-5               # t ~ U(eps, T)
  training.importance_weighting = False  # t ~ g^2/sigma^2, reweighted (with likelihood_weighting)
  training.time_sampling = "iid"      # 'iid' | 'stratified' | 'antithetic' over a batch
  training.batch_size = 512
  training.n_iters = 4000
  training.snapshot_freq = 1000
  training.snapshot_freq_for_preemption = 500
  training.n_jitted_steps = 1          # steps per dispatch; 1 on CPU (docs/training.md)
  training.snapshot_sampling = True
  training.snapshot_sample_count = 2048
  training.log_freq = 100
  training.eval_freq = 0            # no held-out split for samplers of toy data

  config.sampling = sampling = ml_collections.ConfigDict()
  sampling.method = "ode"
  sampling.predictor = "reverse_diffusion"
  sampling.corrector = "langevin"
  sampling.n_steps_each = 1
  sampling.noise_removal = False
  sampling.snr = 0.16
  sampling.eps = 1e-3
  sampling.rtol = 1e-5
  sampling.atol = 1e-5
  sampling.n_steps = 20             # for a few-step sampling.method ('unipc', ...)
  sampling.schedule = "default"

  config.eval = evaluate = ml_collections.ConfigDict()
  evaluate.batch_size = 512
  evaluate.num_samples = 4096

  config.data = data = ml_collections.ConfigDict()
  data.dataset = "TOY2D"
  data.toy_name = "imbalanced_mixture"
  data.centered = False             # identity scaler: toy data are used as they are
  data.random_flip = False
  data.uniform_dequantization = False
  data.image_size = 0
  data.num_channels = 0

  config.model = model = ml_collections.ConfigDict()
  model.name = "mlp"
  model.nf = 128
  model.num_layers = 3
  model.embedding_type = "positional"
  model.scale_by_sigma = False
  model.dropout = 0.0
  model.ema_rate = 0.999
  model.sigma_min = 0.01
  model.sigma_max = 5.0
  model.beta_min = 0.1
  model.beta_max = 20.0
  model.num_scales = 1000

  config.optim = blocks.adam(lr=2e-3, warmup=100)

  config.seed = 0
  return smoke.apply(config, arg, _shrink)


def _shrink(config: ml_collections.ConfigDict) -> None:
  """20 steps of small batches."""
  config.training.update(dict(n_iters=20, snapshot_freq=10, snapshot_freq_for_preemption=5,
                              log_freq=5, batch_size=64, snapshot_sample_count=64))
