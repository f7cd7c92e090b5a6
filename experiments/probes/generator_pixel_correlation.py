"""G's fakes: horizontal-neighbour pixel correlation (noise ~0; dSprites shapes ~0.9) at a checkpoint."""
import sys
import jax, numpy as np
from lgae.core import latent
from lgae.evaluation import run as evaluation
workdir, step = sys.argv[1], int(sys.argv[2])
state, config, _ = evaluation.load_checkpoint(workdir, step)
layout = latent.CodeLayout.from_config(config)
codes = latent.sample(jax.random.PRNGKey(0), layout, 256)
g_in = latent.generator_input(codes, layout)
x = np.asarray(state.gen.apply_fn({'params': state.gen.params, 'batch_stats': state.gen.batch_stats},
                                  g_in, train=False))
a, b = x[:, :, :-1, 0].ravel(), x[:, :, 1:, 0].ravel()
print(f'{workdir} step {step}: neighbour corr {np.corrcoef(a, b)[0, 1]:.3f}, mean {x.mean():.3f}, '
      f'frac>0 {(x > 0).mean():.3f}')
