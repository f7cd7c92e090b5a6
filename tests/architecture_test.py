"""The shape of the code: one-way layers, independent methods, a core that names no method.

The import contracts live in setup.cfg ([importlinter]) and are checked by
import-linter's `lint-imports`; the rest are checks of the source text.
"""

import ast
import io
import os
import pathlib
import subprocess
import sys
import tokenize

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Function-level imports of lgae modules that are not there to dodge a cycle,
# with the reason each stays lazy.
_LAZY_LGAE_IMPORTS = {
    # Checking a config must not import TensorFlow (experiments.benchmark, tests).
    ('lgae/core/config_validation.py', 'lgae.data'),
    ('lgae/methods/latent_stats_vae.py', 'lgae.data'),
    # A method's step is benchmarked without TensorFlow (experiments.accelerator_benchmark).
    ('lgae/methods/latentgan_ae/latent_cache.py', 'lgae.data'),
}
# What the core, the loop and the CLIs must not name: the methods and their own fields.
_METHOD_WORDS = ('latentgan', 'two_stage', 'infogan', 'teacher', 'neighbour', 'beta_vae',
                 'wae', 'cg_aae', 'infovaegan', 'latent_stats', 'autoencoder_steps')


def _lint_imports() -> subprocess.CompletedProcess:
  script = pathlib.Path(sys.executable).with_name('lint-imports')
  command = [str(script)] if script.exists() else [sys.executable, '-m', 'importlinter.cli']
  return subprocess.run(command + ['--config', str(ROOT / 'setup.cfg'), '--no-cache'],
                        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


def test_import_contracts_hold():
  result = _lint_imports()
  assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
  assert 'Contracts: 3 kept, 0 broken.' in result.stdout


def _python_files(*parts):
  for part in parts:
    path = ROOT / part
    yield from ([path] if path.suffix == '.py' else sorted(path.rglob('*.py')))


def test_no_function_level_import_of_lgae_dodges_a_cycle():
  found = []
  for path in _python_files('lgae'):
    tree = ast.parse(path.read_text())
    for func in ast.walk(tree):
      if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
        continue
      for node in ast.walk(func):
        if isinstance(node, ast.ImportFrom) and node.module:
          names = [node.module]
        elif isinstance(node, ast.Import):
          names = [a.name for a in node.names]
        else:
          continue
        for name in names:
          if name.split('.')[0] in ('lgae', 'configs', 'experiments'):
            key = (str(path.relative_to(ROOT)), name)
            if key not in _LAZY_LGAE_IMPORTS:
              found.append(f'{key[0]}:{node.lineno} imports {name} inside {func.name}()')
  assert not found, '\n'.join(found)


def _code_words(path: pathlib.Path) -> list[tuple[int, str]]:
  """(line, token) of the names and non-docstring strings of a file (no comments)."""
  words, previous = [], tokenize.NEWLINE
  for token in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
    if token.type == tokenize.NAME:
      words.append((token.start[0], token.string))
    elif token.type == tokenize.STRING and previous not in (tokenize.INDENT, tokenize.NEWLINE,
                                                             tokenize.NL, tokenize.DEDENT):
      words.append((token.start[0], token.string))
    if token.type not in (tokenize.COMMENT, tokenize.ENCODING):
      previous = token.type
  return words


@pytest.mark.parametrize('part', ['lgae/core', 'lgae/train.py', 'lgae/benchmark.py',
                                  'lgae/data', 'experiments/main.py', 'experiments/evaluate.py',
                                  'experiments/traverse.py', 'experiments/benchmark.py'])
def test_the_core_and_the_clis_name_no_method(part):
  found = []
  for path in _python_files(part):
    for line, word in _code_words(path):
      hits = [w for w in _METHOD_WORDS if w in word.lower()]
      if hits:
        found.append(f'{path.relative_to(ROOT)}:{line}: {word[:80]} ({hits[0]})')
  assert not found, '\n'.join(found)


def test_the_method_table_is_lazy():
  code = ('import sys\n'
          'from lgae import methods\n'
          'before = {m for m in sys.modules if m.startswith("lgae.methods.")}\n'
          'methods.get("infogan")\n'
          'after = {m for m in sys.modules if m.startswith("lgae.methods.")}\n'
          'print(sorted(before), sorted(after - before))\n')
  result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=True,
                          env={**os.environ, 'JAX_PLATFORMS': 'cpu'})
  before, added = result.stdout.strip().splitlines()[-1].split('] [')
  assert before == '[', before   # naming no method imports no method module...
  assert added == "'lgae.methods.infogan']", added   # ...and naming one imports it alone.
