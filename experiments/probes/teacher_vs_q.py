r"""What Q adds to its teacher: both clusterings of a `:best` run, paired, on train and test.

  python -m experiments.probes.teacher_vs_q --workdir=W            # train split: seconds
  python -m experiments.probes.teacher_vs_q --workdir=W --test     # + test split: refits UMAP (minutes)

For a two-stage LatentGAN-AE run trained with a teacher (`loss.teacher_weight`
> 0, e.g. `configs/mnist.py:best`): encodes the train split with the run's
frozen autoencoder, reads the teacher's labels the run kept
(`<workdir>/phase_cache/latent_gan/teacher_<key>.npy`, keyed by those latents;
without them, `--refit` recomputes them exactly as the run did), and prints
one JSON object: the Hungarian error (%) of the teacher's labels and of Q's
Cat head on the same train images, how often Q agrees with its teacher (after
matching Q's categories to the teacher's one-to-one), and Q's test error. With
`--test`, the teacher is refitted on the train latents (the run's settings and
seed; its train labels must equal the kept ones, checked) and assigns the test
latents by UMAP's `transform` and the mixture's `predict`: the teacher alone,
scored as Q is. Labels are read only to score; nothing is chosen by them.
Writes nothing. Bad input ends with one `error: ...` line and exit code 1.
"""

import json
import os

import numpy as np
from absl import flags

from experiments import cli
from experiments.probes import _cli
from lgae import train
from lgae.evaluation import metrics
from lgae.evaluation import outputs as outputs_lib
from lgae.evaluation import run as evaluation
from lgae.methods.latentgan_ae import latent_cache, latent_teacher

_WORKDIR = flags.DEFINE_string('workdir', None, 'A two-stage LatentGAN-AE run with a teacher.')
_STEP = flags.DEFINE_integer('step', None, 'Checkpoint step (default: the latest).')
_REFIT = flags.DEFINE_bool('refit', False, 'Recompute the teacher labels if the run kept none.')
_TEST = flags.DEFINE_bool('test', False, "Also the teacher's own assignment of the test split.")
flags.mark_flags_as_required(['workdir'])


def _hungarian(labels: np.ndarray, clusters: np.ndarray) -> float:
  return metrics.clustering_scores(labels, clusters)['test_error_hungarian']


def run(workdir: str, step: int | None = None, refit: bool = False, test: bool = False) -> dict:
  """Prints and returns the paired scores."""
  state, config, mesh = evaluation.load_checkpoint(workdir, step)
  if (config.model_name != 'latentgan_ae' or config.get('schedule') != 'two_stage' or
      not config.loss.get('teacher_weight', 0.0) > 0):
    raise _cli.InputError(f'{workdir} is not a two-stage LatentGAN-AE run with a teacher '
                          '(loss.teacher_weight > 0), e.g. configs/mnist.py:best.')
  k, ts = int(config.codes.categorical[0]), config.two_stage
  z_train, y_train = latent_cache.encode_split(state, config, mesh, config.dataset.train_split)
  kept = os.path.join(workdir, train.PHASE_CACHE, 'latent_gan',
                      f'teacher_{latent_cache.teacher_key(z_train, config)}.npy')
  settings = dict(num_neighbours=int(ts.num_neighbours), dims=int(ts.teacher_dims),
                  gmm_inits=int(ts.teacher_gmm_inits), seed=int(config.seed))
  assign = None
  if os.path.isfile(kept):
    teacher = np.load(kept, allow_pickle=False)
  elif refit or test:
    teacher, assign = latent_teacher.fit(z_train, k, **settings)
  else:
    raise _cli.InputError(f'{workdir} kept no teacher labels for these latents ({kept}); pass '
                          '--refit to recompute them as the run did (minutes).')
  if test and assign is None:
    refitted, assign = latent_teacher.fit(z_train, k, **settings)
    if not np.array_equal(refitted, teacher):
      raise _cli.InputError(f'the refitted teacher differs from the kept one on '
                            f'{np.mean(refitted != teacher):.2%} of the train latents; its test '
                            'assignment would not be the run\'s teacher.')
  q_train = outputs_lib.collect(state, config, mesh, split=config.dataset.train_split)
  if not np.array_equal(q_train['labels'], y_train):
    raise _cli.InputError('the train split was read in two orders; cannot pair the clusterings.')
  q_train = q_train['clusters'][:, 0]
  # Q's categories named by the teacher's, one to one: how often Q keeps its teacher's label.
  mapped = metrics.hungarian_mapping(teacher, q_train)
  agreement = float(np.mean([mapped.get(int(c), -1) == t for c, t in zip(q_train, teacher)]))
  q_test = outputs_lib.collect(state, config, mesh, split=config.dataset.eval_split)
  scores = {'workdir': workdir, 'step': int(state.step), 'seed': int(config.seed),
            'teacher_train_error': _hungarian(y_train, teacher),
            'q_train_error': _hungarian(y_train, q_train),
            'q_agrees_with_teacher_train': 100 * agreement,
            'q_test_error': _hungarian(q_test['labels'], q_test['clusters'][:, 0]),
            'teacher_test_error': None}
  if test:
    scores['teacher_test_error'] = _hungarian(q_test['labels'], assign(q_test['z']))
  print(json.dumps(scores), flush=True)
  return scores


def main(argv):
  cli.begin(argv)
  _cli.run_main(argv, run, _WORKDIR.value, _STEP.value, _REFIT.value, _TEST.value)


if __name__ == '__main__':
  cli.run(main)
