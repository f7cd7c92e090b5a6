r"""Whether an image-space G draws shapes or pixel noise: the neighbour-pixel correlation of its samples.

  python -m experiments.probes.generator_pixel_correlation --workdir=W [--step=N]

Restores W's checkpoint (latest, or --step) read-only, draws 256 code vectors
(`lgae.core.latent.sample`, key PRNGKey(0)) and generates with G in inference
mode (BatchNorm's running statistics). Prints the Pearson correlation of
horizontally neighbouring pixels of the first channel over all 256 samples
(about 0 for pixel noise, about 0.9 for dSprites shapes), the mean pixel and
the fraction of pixels above 0. For runs whose G draws images: infogan,
infovaegan.

Measured G's neighbour-pixel correlation of the InfoVAEGAN dSprites probes
P1-P13 and D4/D4' (e.g. P13 0.884 at step 3000 against D4' 0.56) in
experiments/results/dsprites/cpu_1206/ (README.md, HYPOTHESES.md; run there
as `ivg_corr.py WORKDIR STEP`; the numbers are as recorded in HYPOTHESES.md,
no output file). Writes nothing. Bad input (no checkpoint in W or none at
--step, a damaged one, a run of a method without an image-space G) ends
with one `error: ...` line and exit code 1.
"""

import jax
import numpy as np
from absl import flags

from experiments import cli
from experiments.probes import _cli
from lgae.core import latent
from lgae.evaluation import run as evaluation

_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory of an infogan or infovaegan run.')
_STEP = flags.DEFINE_integer('step', None, 'Checkpoint step (default: the latest).')
flags.mark_flags_as_required(['workdir'])

IMAGE_GENERATORS = ('infogan', 'infovaegan')   # Methods whose G(codes) is an image batch.
NUM_SAMPLES = 256

def run(workdir: str, step: int | None = None) -> dict[str, float]:
  """Prints the probe's line; returns {'corr', 'mean', 'frac_positive'}."""
  state, config, _ = evaluation.load_checkpoint(workdir, step)
  if config.model_name not in IMAGE_GENERATORS:
    raise _cli.InputError(f'{workdir} holds a run of {config.model_name}; this probe reads the '
                          f'image-space G of a run of {" or ".join(IMAGE_GENERATORS)}.')
  step = int(state.step) if step is None else step
  layout = latent.CodeLayout.from_config(config)
  codes = latent.sample(jax.random.PRNGKey(0), layout, NUM_SAMPLES)
  g_in = latent.generator_input(codes, layout)
  x = np.asarray(state.gen.apply_fn({'params': state.gen.params, 'batch_stats': state.gen.batch_stats},
                                    g_in, train=False))
  a, b = x[:, :, :-1, 0].ravel(), x[:, :, 1:, 0].ravel()
  scores = {'corr': float(np.corrcoef(a, b)[0, 1]), 'mean': float(x.mean()),
            'frac_positive': float((x > 0).mean())}
  print(f'{workdir} step {step}: neighbour corr {scores["corr"]:.3f}, mean {scores["mean"]:.3f}, '
        f'frac>0 {scores["frac_positive"]:.3f}')
  return scores


def main(argv):
  cli.begin(argv)
  run(_WORKDIR.value, _STEP.value)


if __name__ == '__main__':
  cli.run(main)
