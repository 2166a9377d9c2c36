"""Bounds the fast crop's output keeps against the exact crop's, shared by
the data-pipeline tests and the data benchmark's smoke test."""

# PSNR bounds of the fast crop against the exact one, dB, each a few dB
# under the minimum measured over 60 scikit-image photo crops
# (docs/gpu_and_data_pipeline.md):
# - full-resolution decode: torch's uint8 kernel vs Pillow, at most one
#   intensity level apart in rare pixels (measured min 55.7, median ~74);
PSNR_FULL_DECODE = 50.0
# - JPEG decoded at 1/2-1/8 scale in the DCT domain, then Pillow on the same
#   sub-pixel box: a different low-pass than Pillow's bicubic on the full
#   image, on par with JPEG's own loss at quality 90 (~40 dB). Small outputs
#   magnify it: 64-96 px from 500 x 375 files, measured min 36.9 (median
#   41.7-47.4); 224 px from 1000 x 750 files, min 44.1 (median 49.7).
PSNR_REDUCED_SMALL = 33.0
PSNR_REDUCED_224 = 40.0
