"""The sample-quality metrics under their public names (API.md): FID, KID, IS; PSNR and
SSIM of reconstructions.

They live in `scorejax.evaluation.metrics`, beside the evaluation that uses them;
this module only hands them on, so `from scorejax.metrics import inception` and
`scorejax.metrics.frechet_distance` keep working.
"""

from scorejax.evaluation.metrics import (digits_classifier, feature_statistics, fid,
                                         fid_from_features, frechet_distance, inception,
                                         inception_score, kernel_inception_distance, kid,
                                         kid_subsets, mmd2_unbiased, psnr, ssim)

__all__ = [
    "inception", "feature_statistics", "fid_from_features", "frechet_distance",
    "inception_score", "kernel_inception_distance", "kid_subsets", "mmd2_unbiased",
    "digits_classifier", "fid", "kid", "psnr", "ssim",
]
