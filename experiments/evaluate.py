r"""Evaluates a checkpoint of a training run and writes `<workdir>/eval.json`.

  python -m experiments.evaluate --workdir=/tmp/mnist
  python -m experiments.evaluate --workdir=/tmp/mnist --step=4000

The checkpoint (latest, or --step) and its config are restored read-only onto
every device of this machine. The scores are those of
`lgae.evaluation.run.evaluate_checkpoint_metrics` (None where they do not apply);
for every dataset with class labels the classifier behind the generation
metrics is trained once and cached under the tfds data dir
(`lgae.evaluation.classifier`). `eval.json` is the only
file written into the workdir, atomically (a temporary file renamed into
place); whether it can be written is checked before anything is computed,
and if the write fails anyway the scores are printed before the error, so
the minutes of evaluation are not lost. Unusable workdirs end with one
`error: ...` line and exit code 1.
"""

import json
import os
import tempfile

from absl import flags, logging

from experiments import cli
from lgae import errors
from lgae.data import input_pipeline
from lgae.evaluation import run as evaluation
from lgae.evaluation import classifier as classifier_lib

_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory written by experiments.main.')
_STEP = flags.DEFINE_integer('step', None, 'Checkpoint step to evaluate (default: the latest).')
flags.mark_flags_as_required(['workdir'])

EVAL_FILE = 'eval.json'


class OutputNotWritableError(errors.UserError, OSError):
  """The scores' file cannot be written into the workdir."""


def write_json_atomically(path: str, payload: dict) -> None:
  """Writes `payload` to a temporary file beside `path`, then renames it over `path`."""
  directory, name = os.path.split(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(prefix=f'.{name}.tmp-', dir=directory)
  try:
    os.fchmod(fd, 0o644)  # mkstemp's 0600 would make eval.json private.
    with os.fdopen(fd, 'w') as f:
      json.dump(payload, f, indent=2)
      f.write('\n')
    os.replace(tmp, path)
  except BaseException:
    os.unlink(tmp)
    raise


def eval_file(step: int | None) -> str:
  """`eval.json` for the latest checkpoint, `eval_step<N>.json` for `--step=N`.

  So that scoring an earlier checkpoint (e.g. to compare restarts at the same
  step) never replaces the run's final scores.
  """
  return EVAL_FILE if step is None else f'eval_step{step}.json'


def check_writable(path: str) -> None:
  """Raises OutputNotWritableError unless a file can be created beside `path` and renamed onto it."""
  directory = os.path.dirname(os.path.abspath(path))
  problem = None
  if os.path.isdir(path):
    problem = 'it is a directory'
  else:
    try:
      fd, probe = tempfile.mkstemp(prefix=f'.{os.path.basename(path)}.probe-', dir=directory)
      os.close(fd)
      os.unlink(probe)
    except OSError as e:
      problem = e.strerror or str(e)
  if problem:
    todo = ('move that directory away' if os.path.isdir(path) else
            f'make {directory} writable (or evaluate a copy of the run directory)')
    raise OutputNotWritableError(f'cannot write {path} ({problem}); nothing was evaluated. '
                                 f'{todo[0].upper()}{todo[1:]}.')


def run(workdir: str, step: int | None = None) -> dict:
  """Restores, evaluates and writes `<workdir>/<eval_file(step)>`; returns the scores.

  Raises:
    OutputNotWritableError: the file cannot be written: before evaluating,
      or after, with the scores printed to stdout first.
  """
  state, config, mesh = evaluation.load_checkpoint(workdir, step)
  out = os.path.join(workdir, eval_file(step))
  check_writable(out)
  # eval.json always carries the latent diagnostics, whatever the run logged
  # during training (they may have been switched off there to save time).
  config.eval_latent_diagnostics = True
  input_pipeline.check_available(config)
  classifier = classifier_lib.get_or_train_classifier(config)
  scores = evaluation.json_ready(
      evaluation.evaluate_checkpoint_metrics(state, config, mesh, classifier=classifier))
  try:
    write_json_atomically(out, scores)
  except OSError as e:
    print(json.dumps(scores, indent=2), flush=True)   # The work is not lost.
    raise OutputNotWritableError(
        f'cannot write {out} ({e.strerror or e}); the scores are printed above.') from e
  return scores


def main(argv):
  cli.begin(argv)
  scores = run(_WORKDIR.value, _STEP.value)
  logging.info('Wrote %s', os.path.join(_WORKDIR.value, eval_file(_STEP.value)))
  print(json.dumps(scores, indent=2))


if __name__ == '__main__':
  cli.run(main)
