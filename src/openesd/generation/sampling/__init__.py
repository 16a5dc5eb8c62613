"""The WebUI's samplers on top of the diffusers UNet: same payload, same picture (docs/decisions.md).

Layout:
- `schedules`: the model's discrete sigmas (k-diffusion's DiscreteSchedule: sigma <-> t by log-sigma
  interpolation) and the WebUI 1.10's scheduler sigma lists (Automatic, Uniform, Karras, ...).
- `samplers`: the WebUI's samplers, each a coroutine (below), and the table of WebUI sampler names.
- `noise`: the WebUI's random numbers: the initial noise of each image (seed, subseed, seed resize),
  the per-step noise that continues the same generators, the CPU / GPU / NV sources, ENSD, and the
  Brownian-tree noise of the SDE samplers.
- `conditioning`: the prompt per model call (prompt schedules, composable AND, the WebUI's padding).
- `driver`: runs a sampler inside a diffusers pipeline (a scheduler the pipeline calls, and a UNet
  wrapper that is the WebUI's CFG denoiser).

The sampler protocol: a sampler is a generator function `sample(x, sigmas, noise, **options)`. It
yields `(x_eval, sigma)`, each point where it needs the model, and is sent back `denoised`, the
CFG-combined prediction of the clean latent at that point (k-diffusion's `model(x, sigma)`); its
return value (StopIteration.value) is the final latent. `x` and `denoised` are in k-diffusion's
space (x = x0 + sigma * eps); `sigmas` is a list of Python floats ending in 0 (no host sync per
step); `noise(sigma, sigma_next)` gives the step noise (k-diffusion's noise_sampler signature).
"""
