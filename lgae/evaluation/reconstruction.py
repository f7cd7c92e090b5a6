"""Score family: reconstruction, for methods with a decoder.

`recon_mse` is the mean squared reconstruction error per pixel of Dec(Enc(x))
over the eval split. The per-example errors are computed on device by
`outputs.eval_outputs` (no image leaves the devices); here they are averaged.
"""

import numpy as np

from lgae.evaluation import outputs as outputs_lib

KEYS = ('recon_mse',)


def scores(context: outputs_lib.Context) -> dict[str, float]:
  """{'recon_mse': float} for methods with a decoder, else {}."""
  if 'sq_err' not in context.outputs:
    return {}
  return {'recon_mse': float(np.mean(context.outputs['sq_err']))}
