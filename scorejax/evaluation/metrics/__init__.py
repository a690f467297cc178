"""Sample-quality metrics: FID, KID and Inception Score on the FID Inception network.

`inception` is the JAX port of pytorch-fid's Inception (load_params, features);
`frechet_distance`/`feature_statistics` (FID), `kernel_inception_distance` (KID) and
`inception_score` (IS) work on its pool3 features / logits on the host. `psnr` and
`ssim` (`image_quality`) score reconstructions against the truth.

    params = inception.load_params("pt_inception-2015-12-05-6726825d.pth")
    pool3, logits = inception.features(params, images_uint8_nhwc)
    fid = frechet_distance(*feature_statistics(f_data), *feature_statistics(f_model))
"""

from scorejax.evaluation.metrics import digits_classifier, fid, inception, kid
from scorejax.evaluation.metrics.fid import feature_statistics, fid_from_features, frechet_distance
from scorejax.evaluation.metrics.image_quality import psnr, ssim
from scorejax.evaluation.metrics.inception_score import inception_score
from scorejax.evaluation.metrics.kid import kernel_inception_distance, kid_subsets, mmd2_unbiased

__all__ = [
    "inception", "feature_statistics", "fid_from_features", "frechet_distance",
    "inception_score", "kernel_inception_distance", "kid_subsets", "mmd2_unbiased",
    "psnr", "ssim",
]
