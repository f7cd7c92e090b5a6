"""experiments/colab_tpu.ipynb runs top to bottom (smoke mode, CPU), so it cannot rot.

The notebook is executed with nbclient in a fresh kernel of this interpreter
(the `python3` kernel spec resolves to `sys.executable`), which inherits
conftest's environment (4 CPU devices, the XLA compilation cache). Parameters
are injected papermill style: a cell after the one tagged `parameters`. The
data is the on-disk fake MNIST of `tests/fake_mnist.py`; nothing downloads.
"""

import os
import re
import sys

import nbclient  # The test extras (setup.cfg): a missing one fails here, never skips.
import nbformat
import pytest

from tests import fake_mnist

NOTEBOOK = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        'experiments', 'colab_tpu.ipynb')
SMOKE_STEPS = 6        # configs/mnist.py:smoke's num_train_steps.
MORE_STEPS = 3         # TRAIN_MORE_STEPS: the resume cell trains on to step 9.


def _tagged(notebook, tag):
  cells = [c for c in notebook.cells if tag in c.metadata.get('tags', [])]
  assert len(cells) == 1, f'expected one cell tagged {tag!r}, found {len(cells)}'
  return cells[0]


def _text(cell) -> str:
  """Everything a code cell printed (stdout and stderr, i.e. lgae's log lines too)."""
  return ''.join(o.get('text', '') for o in cell.outputs if o.output_type == 'stream')


def _images(cell) -> int:
  return sum('image/png' in o.get('data', {}) for o in cell.outputs
             if o.output_type in ('display_data', 'execute_result'))


def _with_parameters(notebook, **values):
  """Inserts a cell setting `values` right after the `parameters` cell (as papermill does)."""
  index = notebook.cells.index(_tagged(notebook, 'parameters'))
  source = '\n'.join(f'{name} = {value!r}' for name, value in values.items())
  cell = nbformat.v4.new_code_cell(source, metadata={'tags': ['injected-parameters']})
  notebook.cells.insert(index + 1, cell)
  return notebook


def test_parameters_cell_defaults_to_a_real_run():
  """Outside CI the notebook trains for real: the defaults are not the smoke ones."""
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  source = _tagged(notebook, 'parameters').source
  assert re.search(r'^SMOKE = False\b', source, re.M)
  for name in ('VARIANT', 'WORKDIR', 'DATA_DIR', 'USE_DRIVE', 'TRAIN_MORE_STEPS', 'LGAE_SOURCE'):
    assert re.search(rf'^{name} = ', source, re.M), name
  assert not any(o for c in notebook.cells if c.cell_type == 'code' for o in c.outputs), (
      'commit the notebook without outputs')


@pytest.mark.slow
def test_notebook_runs_in_smoke_mode(tmp_path):
  data_dir = fake_mnist.prepare(str(tmp_path / 'data'))
  workdir = str(tmp_path / 'run')
  notebook = _with_parameters(nbformat.read(NOTEBOOK, as_version=4), SMOKE=True,
                              WORKDIR=workdir, DATA_DIR=data_dir, USE_DRIVE=False,
                              TRAIN_MORE_STEPS=MORE_STEPS)
  client = nbclient.NotebookClient(notebook, kernel_name='python3', timeout=300,
                                   resources={'metadata': {'path': str(tmp_path)}})
  client.execute()   # Raises CellExecutionError, with the cell's traceback, if a cell fails.

  devices = '\n'.join(_text(c) for c in notebook.cells if c.cell_type == 'code')
  assert f'({sys.executable})' in devices            # This interpreter's kernel.
  assert re.search(r"backend 'cpu', 4 device\(s\)", devices)

  train = _text(_tagged(notebook, 'train'))
  assert f'No checkpoint in {workdir}: training from scratch to step {SMOKE_STEPS}.' in train
  assert f'step {SMOKE_STEPS}/{SMOKE_STEPS}' in train   # lgae's progress line.
  assert f'Trained to step {SMOKE_STEPS}; latest checkpoint: step {SMOKE_STEPS}.' in train
  assert _images(_tagged(notebook, 'curves')) == 1

  figures = _tagged(notebook, 'figures')
  assert f'Checkpoint at step {SMOKE_STEPS}' in _text(figures)
  # samples_by_category, traverse_u1, traverse_u2, reconstructions, traverse_z.
  assert _images(figures) == 5
  assert sorted(os.listdir(workdir + '_figures')) == [
      'reconstructions.png', 'samples_by_category.png', 'traverse_u1.png', 'traverse_u2.png',
      'traverse_z.png']

  scores = dict(line.split(None, 1) for line in _text(_tagged(notebook, 'evaluate')).splitlines()
                if re.match(r'^[a-z_]+ +\S', line))
  assert scores['step'] == str(SMOKE_STEPS)
  for name in ('test_error_hungarian', 'nmi', 'recon_mse', 'latent_kmeans_error'):
    assert float(scores[name]) >= 0, name
  assert scores['frechet_distance'] == 'None'    # :smoke has no classifier.

  resume = _text(_tagged(notebook, 'resume'))
  total = SMOKE_STEPS + MORE_STEPS
  assert (f'Resuming from the checkpoint at step {SMOKE_STEPS} in {workdir} (to step {total}).'
          in resume)
  assert f'steps {SMOKE_STEPS} -> {total} (resumed)' in resume   # lgae's own start line.
  assert f'Trained to step {total}; latest checkpoint: step {total}.' in resume
  assert str(total) in os.listdir(os.path.join(workdir, 'checkpoints'))
