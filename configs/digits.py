"""DDPM++ (VP SDE) on the offline DIGITS set: the CPU quick start (no download, no GPU).

DIGITS is scikit-learn's bundled 8x8 digits (1500 train / 297 test images),
upscaled (bicubic) to 16x16, values in [0, 1], centered to [-1, 1] for the model.
The network is a small DDPM++ (NCSN++ code with positional time embedding, no FIR,
BigGAN residual blocks, no pyramids): nf 16, ch_mult (1, 2, 2) (16/8/4 px), one
residual block per level, attention at 8x8, 0.31M parameters. Training uses the
continuous VP-SDE DSM loss at batch 64 and a high learning rate (1e-3, which this
small net tolerates) with a short EMA (0.995: the published 0.9999 would still be
mostly the random initialization after 2000 steps). Samples use the PC sampler
with Euler-Maruyama and no corrector over model.num_scales = 200 steps, plus the
final noise removal.

Command:
  python -m scorejax.main --config=configs/digits.py --workdir=runs/digits

Expected: 2000 steps in about 6 minutes on a 2-core CPU (measured: 6m15s at
~6.2 steps/s, compilation and both sample grids included; 12 minutes when other
jobs share the two cores). Sample grids of 64 EMA samples land in
`runs/digits/samples/step_00001000.png` and `step_00002000.png` (with `.npy`
arrays next to them); metrics in `runs/digits/metrics.jsonl` (training loss
every 50 steps, test-split `eval_loss` every 250) and TensorBoard. The final grid
shows recognizable digits of every class (docs/images/digits_samples.png); a
classifier trained on the real digits confidently recognizes ~85% of the samples
(real test digits: ~95%). A run in a fresh workdir reproduces the samples
bit-exactly; rerunning in the same workdir resumes from the last checkpoint
(every 250 steps).

`tests/test_digits_quickstart.py` checks this: the slow test trains this config
through `scorejax.train.train_and_evaluate`, samples 512 images and requires
>= 80% of them to be classified with confidence >= 0.9 by an MLP trained on the
real digits (>= 75% also within the real digits' nearest-neighbour distance of
the training set, which noise fails), and every class to make up >= 2% of them.
`configs/digits.py:smoke` (a tiny net, 3 steps, a 4-image grid) is what the fast
test runs.
"""

import ml_collections


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()

  config.training = training = ml_collections.ConfigDict()
  training.sde = "vpsde"
  training.continuous = True
  training.reduce_mean = True
  training.likelihood_weighting = False
  training.batch_size = 64
  training.n_iters = 2000
  training.snapshot_freq = 1000           # grids at steps 1000 and 2000
  training.snapshot_freq_for_preemption = 250
  training.snapshot_sampling = True
  training.snapshot_sample_count = 64
  training.log_freq = 50
  training.eval_freq = 250

  config.sampling = sampling = ml_collections.ConfigDict()
  sampling.method = "pc"
  sampling.predictor = "euler_maruyama"  # model.num_scales steps from T to eps
  sampling.corrector = "none"
  sampling.n_steps_each = 1
  sampling.noise_removal = True
  sampling.probability_flow = False
  sampling.snr = 0.16
  sampling.rtol = 1e-3                # for --config.sampling.method=ode
  sampling.atol = 1e-3

  config.eval = evaluate = ml_collections.ConfigDict()
  evaluate.batch_size = 256          # of the 297 test digits; divisible by device counts
  evaluate.num_samples = 512         # --mode=eval: 2 rounds of 256 samples per checkpoint
  evaluate.begin_ckpt = None         # None: evaluate every kept checkpoint
  evaluate.end_ckpt = None
  evaluate.checkpoint_steps = None   # or a list of real steps, e.g. [2000]
  evaluate.enable_loss = True
  evaluate.enable_sampling = True    # fd_digits_classifier (not FID: no Inception offline)
  evaluate.enable_bpd = True         # exact bits/dim on the test split
  evaluate.bpd_dataset = "test"
  evaluate.bpd_num_repeats = 1
  evaluate.bpd_max_examples = 256    # --config.eval.bpd_max_examples=None for all 297
  evaluate.stats_path = None
  evaluate.digits_stats_path = None

  config.data = data = ml_collections.ConfigDict()
  data.dataset = "DIGITS"
  data.image_size = 16
  data.num_channels = 1
  data.centered = True
  data.random_flip = False           # flipped digits are not digits
  data.uniform_dequantization = False

  config.model = model = ml_collections.ConfigDict()
  model.name = "ncsnpp"
  model.scale_by_sigma = False
  model.ema_rate = 0.995             # EMA starts at the init: keep it short for 2000 steps
  model.normalization = "GroupNorm"
  model.nonlinearity = "swish"
  model.nf = 16
  model.ch_mult = (1, 2, 2)
  model.num_res_blocks = 1
  model.attn_resolutions = (8,)
  model.resamp_with_conv = True
  model.conditional = True
  model.fir = False
  model.fir_kernel = (1, 3, 3, 1)
  model.skip_rescale = True
  model.resblock_type = "biggan"
  model.progressive = "none"
  model.progressive_input = "none"
  model.progressive_combine = "sum"
  model.attention_type = "ddpm"
  model.init_scale = 0.0
  model.embedding_type = "positional"
  model.fourier_scale = 16
  model.conv_size = 3
  model.dropout = 0.0
  model.sigma_min = 0.01
  model.sigma_max = 50.0
  model.beta_min = 0.1
  model.beta_max = 20.0
  model.num_scales = 200             # sampler steps (training is continuous-time)

  config.optim = optim = ml_collections.ConfigDict()
  optim.optimizer = "Adam"
  optim.lr = 1e-3                    # 5x the CIFAR-10 rate: small net, short run
  optim.beta1 = 0.9
  optim.eps = 1e-8
  optim.warmup = 100
  optim.grad_clip = 1.0
  optim.weight_decay = 0.0

  config.seed = 0

  if arg == "smoke":
    training.n_iters = 3
    training.batch_size = 8
    training.snapshot_freq = 3
    training.snapshot_freq_for_preemption = 3
    training.log_freq = 1
    training.eval_freq = 3
    training.snapshot_sample_count = 4
    evaluate.batch_size = 8
    model.nf = 8
    model.ch_mult = (1, 2)
    model.attn_resolutions = ()
    model.num_scales = 4
  elif arg:
    raise ValueError(f"unknown config argument {arg!r}; valid: '' or 'smoke'")
  return config
