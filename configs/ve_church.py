"""NCSN++ cont. on LSUN church_outdoor 256x256 with the VE SDE (score_sde configs/ncsnpp/church.py).

Command:
  python -m scorejax.main --config=configs/ve_church.py --workdir=runs/ve_church --config.data.data_dir=DIR
  python -m scorejax.main --config=configs/ve_church.py --workdir=runs/ve_church --config.data.data_dir=DIR --mode=eval

Data: TFDS lsun/church_outdoor (`config.data.category = 'church_outdoor'`), prepared once as ArrayRecord
(`tfds build lsun/church_outdoor --data_dir=DIR --file_format=array_record`).

Reproduces score_sde's 256x256 LSUN church_outdoor model: the bedroom model of
`ve_bedroom.py` (its network, training and PC sampling) with sigma_max = 380.
Song et al. 2021 show its samples; no FID/IS is stated here because none could be
confirmed for it. `configs/ve_church.py:smoke` shrinks the network to 16x16
(`configs/smoke.py`) so that it runs in seconds.
"""

import ml_collections

from configs import ve_bedroom


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  """The bedroom model's settings (`ve_bedroom.py`) on church_outdoor, with its sigma_max."""
  config = ve_bedroom.get_config(arg)
  config.data.category = "church_outdoor"
  config.model.sigma_max = 380.0         # church: 380 (the LSUN default is 378)
  return config
