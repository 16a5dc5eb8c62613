"""What a job runs: txt2img, img2img, hires fix, extras (upscalers, rembg), with samplers, seeds, infotext."""
