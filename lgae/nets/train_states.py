"""The baselines' train states: the root every method's state has, and one network's state.

A method's state is one pytree whose root has `step` and `rng`
(`lgae.core.method`): `StepState` declares those two, and each baseline's
state adds its networks. Each network's state is an
`lgae.core.state.AutoencoderState` (parameters, Adam state, BatchNorm running
statistics, {} for a network without BatchNorm); `create`, `apply` and
`train_forward` are the few ways the baselines make and run one, written once.
"""

from typing import Any

import flax.linen as nn
import flax.struct
import jax
import ml_collections

from lgae.core import state as state_lib


class StepState(flax.struct.PyTreeNode):
  """The root of a method's train state; each method's state class adds its networks.

  Attributes:
    step: int32 scalar, the number of updates done.
    rng: the base PRNG key (raw uint32[2]); step `s` draws from fold_in(rng, s).
  """

  step: jax.Array
  rng: jax.Array


def create(model: nn.Module, variables: Any, config: ml_collections.ConfigDict,
           network: str) -> state_lib.AutoencoderState:
  """The state of `model` from its initial `variables`, with `network`'s Adam (`make_optimizer`)."""
  return state_lib.AutoencoderState.create(
      apply_fn=model.apply, params=variables['params'],
      tx=state_lib.make_optimizer(config, network),
      batch_stats=variables.get('batch_stats', {}))


def variables(net: state_lib.AutoencoderState, params: Any = None,
              batch_stats: Any = None) -> dict[str, Any]:
  """{'params', 'batch_stats'} of `net`, either replaced where given."""
  return {'params': net.params if params is None else params,
          'batch_stats': net.batch_stats if batch_stats is None else batch_stats}


def apply(net: state_lib.AutoencoderState, *inputs, **kwargs) -> Any:
  """`net`'s function at its current parameters and running statistics.

  Inference mode is the caller's `train=False`, where the network takes one.
  """
  return net.apply_fn(variables(net), *inputs, **kwargs)


def train_forward(net: state_lib.AutoencoderState, params: Any, *inputs,
                  batch_stats: Any = None, **kwargs) -> tuple[Any, Any]:
  """Train-mode forward (batch statistics) at `params`: (output, updated running statistics).

  The running statistics are updated from `batch_stats` (default: `net`'s);
  a network without BatchNorm returns them unchanged.
  """
  given = variables(net, params, batch_stats)
  out, updates = net.apply_fn(given, *inputs, train=True, mutable=['batch_stats'], **kwargs)
  return out, updates.get('batch_stats', given['batch_stats'])
