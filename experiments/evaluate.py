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
place). Unusable workdirs end with one `error: ...` line and exit code 1.
"""

import json
import os
import sys
import tempfile

from absl import app, flags, logging

from lgae.core import checkpointing, console
from lgae.data import input_pipeline
from lgae.evaluation import run as evaluation
from lgae.evaluation import classifier as classifier_lib

_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory written by experiments.main.')
_STEP = flags.DEFINE_integer('step', None, 'Checkpoint step to evaluate (default: the latest).')
flags.mark_flags_as_required(['workdir'])

# Errors a user can fix from the message alone: print it, no traceback.
_USER_ERRORS = (checkpointing.CheckpointError, input_pipeline.DataNotFoundError)

EVAL_FILE = 'eval.json'


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


def run(workdir: str, step: int | None = None) -> dict:
  """Restores, evaluates and writes `<workdir>/<eval_file(step)>`; returns the scores."""
  state, config, mesh = evaluation.load_checkpoint(workdir, step)
  # eval.json always carries the latent diagnostics, whatever the run logged
  # during training (they may have been switched off there to save time).
  config.eval_latent_diagnostics = True
  input_pipeline.check_available(config)
  classifier = classifier_lib.get_or_train_classifier(config)
  scores = evaluation.json_ready(
      evaluation.evaluate_checkpoint_metrics(state, config, mesh, classifier=classifier))
  write_json_atomically(os.path.join(workdir, eval_file(step)), scores)
  return scores


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  console.quiet_unless_verbosity_given()
  checkpointing.silence_closed_event_loop_callbacks()
  try:
    scores = run(_WORKDIR.value, _STEP.value)
  except _USER_ERRORS as e:
    print(f'error: {" ".join(str(e).split())}', file=sys.stderr, flush=True)
    sys.exit(1)
  logging.info('Wrote %s', os.path.join(_WORKDIR.value, eval_file(_STEP.value)))
  print(json.dumps(scores, indent=2))


if __name__ == '__main__':
  app.run(main)
