"""NCSN++ cont. on LSUN bedroom 256x256 with the VE SDE (score_sde configs/ve/bedroom_ncsnpp_continuous.py).

Command:
  python -m scorejax.main --config=configs/ve_bedroom.py --workdir=runs/ve_bedroom --config.data.data_dir=DIR
  python -m scorejax.main --config=configs/ve_bedroom.py --workdir=runs/ve_bedroom --config.data.data_dir=DIR --mode=eval

Data: TFDS lsun/bedroom (`config.data.category = 'bedroom'`), prepared once as ArrayRecord
(`tfds build lsun/bedroom --data_dir=DIR --file_format=array_record`).

Reproduces score_sde's 256x256 LSUN bedroom model (Song et al. 2021 show its
samples; no FID/IS is stated here because none could be confirmed for it): NCSN++ with 7 levels
(ch_mult 1,1,2,2,2,2,2), two res blocks per level, attention at 16x16, BigGAN
res blocks with FIR resampling, progressive growing on both ends (output_skip
and input_skip, combined by sum), no dropout, continuous VE SDE with
sigma_max = 378 and N = 2000, batch 64 for 2.4M iterations, PC sampling (reverse
diffusion + Langevin, snr 0.075).
`configs/ve_bedroom.py:smoke` shrinks the network to 16x16 (`configs/smoke.py`) so that it
runs in seconds.
"""

import ml_collections

from configs import blocks, default_lsun, smoke


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  config = default_lsun.get_config()     # VE SDE, PC: reverse diffusion + Langevin
  config.data.category = "bedroom"
  config.model.update(blocks.ncsnpp(ch_mult=(1, 1, 2, 2, 2, 2, 2), num_res_blocks=2,
                                    progressive="output_skip", progressive_input="input_skip"))
  return smoke.apply(config, arg, smoke.shrink_ncsnpp)
